// Package flowstate seals what an interactive identity source's login
// route remembers for its callback (OIDC and OAuth 2.0 state, PKCE
// verifier and nonce; a SAML AuthnRequest's ID) into a cookie value, so no
// instance keeps it in memory: any rcsso instance on the same key opens it.
//
// A value is base64url(nonce ‖ AES-256-GCM ciphertext ‖ tag) of the JSON
// state, without padding, at most MaxCookie bytes. The additional data
// binds it to a format ("rcsso-oidc-state/v1") and the source's name, so one
// source's cookie is useless to another source sharing the key. Open
// refuses, without panicking on any input, a value of the wrong length or
// alphabet, one that does not authenticate and one whose JSON does not
// decode; each source then checks its own fields and the age (Fresh).
package flowstate

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"time"
)

// MaxCookie is the longest encoded value Open accepts (bytes).
const MaxCookie = 4096

// ClockSkew is how far in the future a state's issue time may lie (another
// instance's clock).
const ClockSkew = time.Minute

// ErrInvalid is wrapped by every Open failure.
var ErrInvalid = errors.New("invalid login state")

// Codec seals and opens states of type T (a JSON-encodable struct).
type Codec[T any] struct {
	aead cipher.AEAD
	ad   []byte
}

// New returns a Codec for the 32-byte key, binding values to format (e.g.
// "rcsso-oauth2-state/v1") and the source name. Errors: a key of another
// length.
func New[T any](key []byte, format, name string) (*Codec[T], error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("state key has %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Codec[T]{aead: aead, ad: []byte(format + "\x00" + name)}, nil
}

// Seal returns the cookie value for st, under a random GCM nonce.
func (c *Codec[T]) Seal(st T) (string, error) {
	nonce := make([]byte, c.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return c.SealNonce(st, nonce)
}

// SealNonce is Seal under the given 12-byte GCM nonce, which must never
// repeat for a key: for tests that need the same value twice (fuzz seeds
// rebuilt by each fuzzing worker).
func (c *Codec[T]) SealNonce(st T, nonce []byte) (string, error) {
	if len(nonce) != c.aead.NonceSize() {
		return "", fmt.Errorf("nonce has %d bytes, want %d", len(nonce), c.aead.NonceSize())
	}
	plain, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	sealed := c.aead.Seal(nonce[:len(nonce):len(nonce)], nonce, plain, c.ad)
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Open returns the state sealed in v. Errors wrap ErrInvalid and say which
// check failed (bad length, bad encoding, too short, authentication
// failed, bad payload).
func (c *Codec[T]) Open(v string) (T, error) {
	var st T
	if len(v) == 0 || len(v) > MaxCookie {
		return st, fmt.Errorf("%w: bad length", ErrInvalid)
	}
	for i := 0; i < len(v); i++ { // the decoder would skip \r and \n
		b := v[i]
		if !('A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_') {
			return st, fmt.Errorf("%w: bad encoding", ErrInvalid)
		}
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil {
		return st, fmt.Errorf("%w: bad encoding", ErrInvalid)
	}
	ns := c.aead.NonceSize()
	if len(raw) < ns+c.aead.Overhead() {
		return st, fmt.Errorf("%w: too short", ErrInvalid)
	}
	plain, err := c.aead.Open(nil, raw[:ns], raw[ns:], c.ad)
	if err != nil {
		return st, fmt.Errorf("%w: authentication failed", ErrInvalid)
	}
	if err := json.Unmarshal(plain, &st); err != nil {
		return st, fmt.Errorf("%w: bad payload", ErrInvalid)
	}
	return st, nil
}

// Fresh reports whether a state issued at issuedAt (Unix seconds) is within
// ttl of now, and not more than ClockSkew in the future.
func Fresh(issuedAt int64, now time.Time, ttl time.Duration) bool {
	issued := time.Unix(issuedAt, 0)
	return now.Sub(issued) <= ttl && issued.Sub(now) <= ClockSkew
}

// MaxReturnTo bounds a return_to kept in a state cookie (bytes).
const MaxReturnTo = 2048

// ReturnTo is where to send the browser after a login flow: raw through
// safe (the server's return_to filter, identity.Deps.SafeReturnTo); "" when
// raw is empty, there is no filter, or raw or the result is longer than
// MaxReturnTo.
func ReturnTo(safe func(string) string, raw string) string {
	if raw == "" || safe == nil || len(raw) > MaxReturnTo {
		return ""
	}
	if out := safe(raw); len(out) <= MaxReturnTo {
		return out
	}
	return ""
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title></head>
<body><h1>{{.Title}}</h1><p>{{.Message}}</p></body></html>
`))

// Page writes a small self-contained HTML page of a login flow (an error
// or a notice): no script, style or form may run or load from it, and with
// noFraming no page may frame it either.
func Page(w http.ResponseWriter, status int, title, msg string, noFraming bool) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	csp := "default-src 'none'; base-uri 'none'; form-action 'none'"
	if noFraming {
		csp += "; frame-ancestors 'none'"
	}
	h.Set("Content-Security-Policy", csp)
	w.WriteHeader(status)
	_ = pageTmpl.Execute(w, struct{ Title, Message string }{title, msg})
}
