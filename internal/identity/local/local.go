// Package local is the "local" identity source: accounts kept in rcsso's
// store (created with `rcsso users add`), a login form on the IFrame URL, and
// rcsso's own session cookie afterwards.
package local

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/websession"
)

// argon2id parameters (OWASP 2023 minimum: 19 MiB, 2 iterations, 1 lane).
const (
	argonMemory  = 19 * 1024
	argonTime    = 2
	argonThreads = 1
	argonKeyLen  = 32
)

// Limits on account fields.
const (
	MaxUsernameLen = 64
	MinPasswordLen = 8
	MaxPasswordLen = 1024
)

// Config is identity source type local's configuration: it has no keys of
// its own (accounts are managed with rcsso users).
type Config struct{}

// Validate implements identity.Config.
func (*Config) Validate(config.Block) error { return nil }

// Open implements identity.Config.
func (*Config) Open(_ context.Context, d identity.Deps) (identity.Source, error) {
	return New(d.Name, d.Store, d.Sessions), nil
}

// Source is the local identity source.
type Source struct {
	name     string
	st       store.Store
	sessions identity.Sessions
	dummy    string
}

// New returns the local source named name ("local" if empty).
func New(name string, st store.Store, sessions identity.Sessions) *Source {
	if name == "" {
		name = "local"
	}
	dummy, _ := HashPassword("dummy password for timing")
	return &Source{name: name, st: st, sessions: sessions, dummy: dummy}
}

// Name implements identity.Source.
func (s *Source) Name() string { return s.name }

// Identify implements identity.Source: the visitor's rcsso session, if it was
// created by this source.
func (s *Source) Identify(r *http.Request) (identity.Identity, error) {
	return websession.IdentifyAs(s.sessions, r, s.name)
}

// Authenticate implements identity.PasswordAuthenticator. Unknown users cost
// the same hashing work as wrong passwords.
func (s *Source) Authenticate(ctx context.Context, username, password string) (identity.Identity, error) {
	username = NormalizeUsername(username)
	if username == "" || len(password) > MaxPasswordLen {
		_ = VerifyPassword(s.dummy, password)
		return identity.Identity{}, identity.ErrBadCredentials
	}
	a, err := s.st.GetAccount(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		_ = VerifyPassword(s.dummy, password)
		return identity.Identity{}, identity.ErrBadCredentials
	}
	if err != nil {
		return identity.Identity{}, fmt.Errorf("local: %w", err)
	}
	if !VerifyPassword(a.PasswordHash, password) {
		return identity.Identity{}, identity.ErrBadCredentials
	}
	return identity.Identity{
		Subject:       s.name + ":" + a.Username,
		Source:        s.name,
		Username:      a.Username,
		Name:          a.Name,
		Email:         a.Email,
		EmailVerified: a.Email != "",
	}, nil
}

// NormalizeUsername trims and lower-cases a login name.
func NormalizeUsername(u string) string { return strings.ToLower(strings.TrimSpace(u)) }

// NewAccount validates the fields and returns an account with a hashed
// password, ready for store.CreateAccount.
func NewAccount(username, password, name, email string, now time.Time) (store.Account, error) {
	username = NormalizeUsername(username)
	switch {
	case username == "":
		return store.Account{}, errors.New("username is empty")
	case utf8.RuneCountInString(username) > MaxUsernameLen:
		return store.Account{}, fmt.Errorf("username is longer than %d characters", MaxUsernameLen)
	case strings.ContainsAny(username, " \t\r\n:/"):
		return store.Account{}, errors.New("username must not contain spaces, ':' or '/'")
	case len(password) < MinPasswordLen:
		return store.Account{}, fmt.Errorf("password must have at least %d characters", MinPasswordLen)
	case len(password) > MaxPasswordLen:
		return store.Account{}, fmt.Errorf("password must have at most %d bytes", MaxPasswordLen)
	case email != "" && !strings.Contains(email, "@"):
		return store.Account{}, fmt.Errorf("e-mail %q is not an address", email)
	}
	h, err := HashPassword(password)
	if err != nil {
		return store.Account{}, err
	}
	return store.Account{Username: username, PasswordHash: h, Name: name, Email: email, CreatedAt: now.UTC()}, nil
}

// HashPassword returns an argon2id PHC string:
// $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash> (raw std base64).
func HashPassword(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// VerifyPassword checks password against a PHC string from HashPassword, in
// constant time. Malformed hashes never verify.
func VerifyPassword(phc, password string) bool {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || m > 1<<20 || t == 0 || t > 16 || p == 0 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}
