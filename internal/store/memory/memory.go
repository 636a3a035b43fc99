// Package memory is an in-process store.Store kept in maps behind a mutex.
// State is lost when the process exits; it suits tests and single-instance
// deployments that can afford to re-login users after a restart.
package memory

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rcsso/rcsso/internal/store"
)

// purgeScan bounds how many sessions one PutSession inspects for expiry.
const purgeScan = 64

// Config is store type memory's configuration: it has no keys. The state
// lives in one process and is lost when it exits, so the token encryption
// key may be ephemeral.
type Config struct{}

// Validate implements store.Config.
func (Config) Validate() error { return nil }

// Open implements store.Config.
func (Config) Open(context.Context, *slog.Logger) (store.Store, error) { return New(), nil }

// Shared implements store.Config: one process only.
func (Config) Shared() bool { return false }

// Store is an in-memory store.Store. The zero value is not usable; call New.
//
// Records are copied on the way in and out, so callers cannot mutate stored
// state. Times are kept in UTC, truncated to the millisecond, matching the
// persistent backends. Expired sessions are never returned; PutSession also
// deletes expired sessions among up to 64 entries it visits (map iteration
// order is random, so over time every expired session is found).
type Store struct {
	mu       sync.RWMutex
	accounts map[string]store.Account // key: lower-cased username
	sessions map[string]store.Session // key: IDHash
	links    map[string]store.Link    // key: Subject
	byUser   map[string]string        // Rocket.Chat user id → Subject
	locks    map[string]lease
	used     map[string]time.Time // UseOnce key → expiry
	counters map[string]counter

	subsMu sync.Mutex
	subs   map[*subscriber]struct{}
	codes  map[string]store.Code
	tokens map[string]store.Token // key: Subject
}

var (
	_ store.Store      = (*Store)(nil)
	_ store.Locker     = (*Store)(nil)
	_ store.ChangeFeed = (*Store)(nil)
	_ store.Exporter   = (*Store)(nil)
)

type subscriber struct {
	ctx context.Context
	fn  func(string)
}

type counter struct {
	n     int64
	until time.Time
}

// New returns an empty Store.
func New() *Store {
	return &Store{
		accounts: make(map[string]store.Account),
		sessions: make(map[string]store.Session),
		links:    make(map[string]store.Link),
		byUser:   make(map[string]string),
		locks:    make(map[string]lease),
		used:     make(map[string]time.Time),
		counters: make(map[string]counter),
		subs:     make(map[*subscriber]struct{}),
		codes:    make(map[string]store.Code),
		tokens:   make(map[string]store.Token),
	}
}

func norm(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

func wrap(op string, err error) error { return fmt.Errorf("memory: %s: %w", op, err) }

// CreateAccount implements store.Store; ErrConflict if the username exists.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	if err := ctx.Err(); err != nil {
		return wrap("create account", err)
	}
	a.Username = strings.ToLower(a.Username)
	a.CreatedAt = norm(a.CreatedAt)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[a.Username]; ok {
		return wrap("create account", store.ErrConflict)
	}
	s.accounts[a.Username] = a
	return nil
}

// GetAccount implements store.Store; ErrNotFound if absent.
func (s *Store) GetAccount(ctx context.Context, username string) (store.Account, error) {
	if err := ctx.Err(); err != nil {
		return store.Account{}, wrap("get account", err)
	}
	s.mu.RLock()
	a, ok := s.accounts[strings.ToLower(username)]
	s.mu.RUnlock()
	if !ok {
		return store.Account{}, wrap("get account", store.ErrNotFound)
	}
	return a, nil
}

// ListAccounts implements store.Store: all accounts ordered by username.
func (s *Store) ListAccounts(ctx context.Context) ([]store.Account, error) {
	if err := ctx.Err(); err != nil {
		return nil, wrap("list accounts", err)
	}
	s.mu.RLock()
	out := make([]store.Account, 0, len(s.accounts))
	for _, a := range s.accounts {
		out = append(out, a)
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b store.Account) int { return cmp.Compare(a.Username, b.Username) })
	return out, nil
}

// DeleteAccount implements store.Store; ErrNotFound if absent.
func (s *Store) DeleteAccount(ctx context.Context, username string) error {
	if err := ctx.Err(); err != nil {
		return wrap("delete account", err)
	}
	username = strings.ToLower(username)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[username]; !ok {
		return wrap("delete account", store.ErrNotFound)
	}
	delete(s.accounts, username)
	return nil
}

// PutSession implements store.Store. It also purges expired sessions found
// among a bounded number of visited entries.
func (s *Store) PutSession(ctx context.Context, sess store.Session) error {
	if err := ctx.Err(); err != nil {
		return wrap("put session", err)
	}
	sess.CreatedAt = norm(sess.CreatedAt)
	sess.ExpiresAt = norm(sess.ExpiresAt)
	sess.Roles, sess.Groups = slices.Clone(sess.Roles), slices.Clone(sess.Groups)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, old := range s.sessions {
		if n++; n > purgeScan {
			break
		}
		if !old.ExpiresAt.After(now) {
			delete(s.sessions, id)
		}
	}
	s.sessions[sess.IDHash] = sess
	return nil
}

// GetSession implements store.Store; ErrNotFound if absent or expired.
func (s *Store) GetSession(ctx context.Context, idHash string) (store.Session, error) {
	if err := ctx.Err(); err != nil {
		return store.Session{}, wrap("get session", err)
	}
	now := time.Now()
	s.mu.RLock()
	sess, ok := s.sessions[idHash]
	s.mu.RUnlock()
	if !ok || !sess.ExpiresAt.After(now) {
		return store.Session{}, wrap("get session", store.ErrNotFound)
	}
	sess.Roles, sess.Groups = slices.Clone(sess.Roles), slices.Clone(sess.Groups)
	return sess, nil
}

// DeleteSession implements store.Store; nil if absent.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	if err := ctx.Err(); err != nil {
		return wrap("delete session", err)
	}
	s.mu.Lock()
	delete(s.sessions, idHash)
	s.mu.Unlock()
	return nil
}

// DeleteSessionsBySubject implements store.Store. It scans every session.
func (s *Store) DeleteSessionsBySubject(ctx context.Context, subject string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, wrap("delete sessions by subject", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, sess := range s.sessions {
		if sess.Subject == subject {
			delete(s.sessions, id)
			n++
		}
	}
	return n, nil
}

// GetLink implements store.Store; ErrNotFound if absent.
func (s *Store) GetLink(ctx context.Context, subject string) (store.Link, error) {
	if err := ctx.Err(); err != nil {
		return store.Link{}, wrap("get link", err)
	}
	s.mu.RLock()
	l, ok := s.links[subject]
	s.mu.RUnlock()
	if !ok {
		return store.Link{}, wrap("get link", store.ErrNotFound)
	}
	return cloneLink(l), nil
}

// LinkByUserID implements store.Store; ErrNotFound if absent.
func (s *Store) LinkByUserID(ctx context.Context, userID string) (store.Link, error) {
	if err := ctx.Err(); err != nil {
		return store.Link{}, wrap("link by user id", err)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	subject, ok := s.byUser[userID]
	if !ok || userID == "" {
		return store.Link{}, wrap("link by user id", store.ErrNotFound)
	}
	return cloneLink(s.links[subject]), nil
}

// UpdateLink implements store.Store under the store's write lock.
func (s *Store) UpdateLink(ctx context.Context, subject string, update func(*store.Link) error) (store.Link, error) {
	if err := ctx.Err(); err != nil {
		return store.Link{}, wrap("update link", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.links[subject]
	if !ok {
		old = store.Link{Subject: subject}
	}
	l := cloneLink(old)
	if err := update(&l); err != nil {
		return store.Link{}, err
	}
	l.Subject = subject
	if holder, ok := s.byUser[l.UserID]; ok && l.UserID != "" && holder != subject {
		return store.Link{}, wrap("update link", &store.LinkTakenError{UserID: l.UserID, Holder: holder})
	}
	for _, t := range []*time.Time{&l.ChatLoggedOutAt, &l.ProfileSyncedAt, &l.LastMintAt, &l.CreatingAt, &l.DeactivatedAt, &l.Rooms.SyncedAt} {
		if !t.IsZero() {
			*t = norm(*t)
		}
	}
	l.UpdatedAt = norm(time.Now())
	if old.UserID != "" && old.UserID != l.UserID {
		delete(s.byUser, old.UserID)
	}
	if l.UserID != "" {
		s.byUser[l.UserID] = subject
	}
	s.links[subject] = cloneLink(l) // the updater may have set slices the caller keeps
	return cloneLink(l), nil
}

func cloneLink(l store.Link) store.Link {
	l.Secret = bytes.Clone(l.Secret)
	l.Rooms = l.Rooms.Clone()
	return l
}

// GetToken implements store.Store; ErrNotFound if absent. The returned
// Ciphertext is a fresh copy.
func (s *Store) GetToken(ctx context.Context, subject string) (store.Token, error) {
	if err := ctx.Err(); err != nil {
		return store.Token{}, wrap("get token", err)
	}
	s.mu.RLock()
	t, ok := s.tokens[subject]
	s.mu.RUnlock()
	if !ok {
		return store.Token{}, wrap("get token", store.ErrNotFound)
	}
	// Stored slices are never mutated, so copying outside the lock is safe.
	t.Ciphertext = bytes.Clone(t.Ciphertext)
	return t, nil
}

// PutToken implements store.Store. It stores a copy of t.Ciphertext.
func (s *Store) PutToken(ctx context.Context, t store.Token) error {
	if err := ctx.Err(); err != nil {
		return wrap("put token", err)
	}
	t.Ciphertext = bytes.Clone(t.Ciphertext)
	t.MintedAt = norm(t.MintedAt)
	t.ValidatedAt = norm(t.ValidatedAt)
	s.mu.Lock()
	s.tokens[t.Subject] = t
	s.mu.Unlock()
	return nil
}

// DeleteLink implements store.Store; nil if absent.
func (s *Store) DeleteLink(ctx context.Context, subject string) error {
	if err := ctx.Err(); err != nil {
		return wrap("delete link", err)
	}
	s.mu.Lock()
	if l, ok := s.links[subject]; ok && l.UserID != "" {
		delete(s.byUser, l.UserID)
	}
	delete(s.links, subject)
	s.mu.Unlock()
	return nil
}

// DeleteToken implements store.Store; nil if absent.
func (s *Store) DeleteToken(ctx context.Context, subject string) error {
	if err := ctx.Err(); err != nil {
		return wrap("delete token", err)
	}
	s.mu.Lock()
	delete(s.tokens, subject)
	s.mu.Unlock()
	return nil
}

// Ping implements store.Store; it fails only if ctx is done.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// Close implements store.Store. It is a no-op; the Store stays usable.
func (s *Store) Close() error { return nil }

type lease struct {
	token   string
	expires time.Time
}

// TryLock implements store.Locker (one process only).
func (s *Store) TryLock(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	if err := ctx.Err(); err != nil {
		return "", false, wrap("lock", err)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.locks[key]; ok && l.expires.After(now) {
		return "", false, nil
	}
	token := rand.Text()
	s.locks[key] = lease{token: token, expires: now.Add(ttl)}
	return token, true, nil
}

// Renew implements store.Locker.
func (s *Store) Renew(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, wrap("renew lock", err)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.locks[key]
	if !ok || l.token != token || !l.expires.After(now) {
		return false, nil
	}
	s.locks[key] = lease{token: token, expires: now.Add(ttl)}
	return true, nil
}

// UseOnce implements store.Store.
func (s *Store) UseOnce(ctx context.Context, key string, expiresAt time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, wrap("use once", err)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.used[key]; ok && exp.After(now) {
		return false, nil
	}
	if len(s.used) >= purgeScan {
		n := 0
		for k, exp := range s.used {
			if !exp.After(now) {
				delete(s.used, k)
			}
			if n++; n >= purgeScan {
				break
			}
		}
	}
	s.used[key] = norm(expiresAt)
	return true, nil
}

// Unlock implements store.Locker.
func (s *Store) Unlock(ctx context.Context, key, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.locks[key]; ok && l.token == token {
		delete(s.locks, key)
	}
	return nil
}

// PutCode implements store.Store.
func (s *Store) PutCode(ctx context.Context, c store.Code) error {
	if err := ctx.Err(); err != nil {
		return wrap("put code", err)
	}
	c.ExpiresAt = norm(c.ExpiresAt)
	c.Profile = bytes.Clone(c.Profile)
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for h, old := range s.codes {
		if !old.ExpiresAt.After(now) {
			delete(s.codes, h)
		}
	}
	s.codes[c.Hash] = c
	return nil
}

// ConsumeCode implements store.Store.
func (s *Store) ConsumeCode(ctx context.Context, h string) (store.Code, error) {
	if err := ctx.Err(); err != nil {
		return store.Code{}, wrap("consume code", err)
	}
	s.mu.Lock()
	c, ok := s.codes[h]
	delete(s.codes, h)
	s.mu.Unlock()
	if !ok || !c.ExpiresAt.After(time.Now()) {
		return store.Code{}, wrap("consume code", store.ErrNotFound)
	}
	c.Profile = bytes.Clone(c.Profile)
	return c, nil
}

// Count implements store.Store.
func (s *Store) Count(ctx context.Context, key string, delta int64, window time.Duration) (int64, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return 0, time.Time{}, wrap("count", err)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.counters[key]
	if !ok || !c.until.After(now) {
		if len(s.counters) >= purgeScan {
			n := 0
			for k, old := range s.counters {
				if !old.until.After(now) {
					delete(s.counters, k)
				}
				if n++; n >= purgeScan {
					break
				}
			}
		}
		c = counter{until: norm(now.Add(window))}
	}
	c.n += delta
	s.counters[key] = c
	return c.n, c.until, nil
}

// ResetCount implements store.Store.
func (s *Store) ResetCount(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return wrap("reset count", err)
	}
	s.mu.Lock()
	delete(s.counters, key)
	s.mu.Unlock()
	return nil
}

// Export implements store.Exporter. It copies each kind's records under the
// read lock, then calls v's function on the copies without holding it, so
// the functions may use the store. Records come ordered by key.
func (s *Store) Export(ctx context.Context, v store.Visitor) error {
	if err := ctx.Err(); err != nil {
		return wrap("export", err)
	}
	if v.Account != nil {
		s.mu.RLock()
		accounts := slices.Collect(maps.Values(s.accounts))
		s.mu.RUnlock()
		slices.SortFunc(accounts, func(a, b store.Account) int { return cmp.Compare(a.Username, b.Username) })
		if err := each(ctx, accounts, v.Account); err != nil {
			return err
		}
	}
	if v.Session != nil {
		now := time.Now()
		s.mu.RLock()
		var sessions []store.Session
		for _, sess := range s.sessions {
			if sess.ExpiresAt.After(now) {
				sess.Roles, sess.Groups = slices.Clone(sess.Roles), slices.Clone(sess.Groups)
				sessions = append(sessions, sess)
			}
		}
		s.mu.RUnlock()
		slices.SortFunc(sessions, func(a, b store.Session) int { return cmp.Compare(a.IDHash, b.IDHash) })
		if err := each(ctx, sessions, v.Session); err != nil {
			return err
		}
	}
	if v.Link != nil {
		s.mu.RLock()
		links := make([]store.Link, 0, len(s.links))
		for _, l := range s.links {
			links = append(links, cloneLink(l))
		}
		s.mu.RUnlock()
		slices.SortFunc(links, func(a, b store.Link) int { return cmp.Compare(a.Subject, b.Subject) })
		if err := each(ctx, links, v.Link); err != nil {
			return err
		}
	}
	if v.Token != nil {
		s.mu.RLock()
		tokens := make([]store.Token, 0, len(s.tokens))
		for _, t := range s.tokens {
			t.Ciphertext = bytes.Clone(t.Ciphertext)
			tokens = append(tokens, t)
		}
		s.mu.RUnlock()
		slices.SortFunc(tokens, func(a, b store.Token) int { return cmp.Compare(a.Subject, b.Subject) })
		if err := each(ctx, tokens, v.Token); err != nil {
			return err
		}
	}
	return nil
}

// each calls fn for every record until fn fails or ctx is done.
func each[R any](ctx context.Context, records []R, fn func(R) error) error {
	for _, r := range records {
		if err := ctx.Err(); err != nil {
			return wrap("export", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Publish implements store.ChangeFeed: every subscriber of this Store (one
// process) is called before Publish returns.
func (s *Store) Publish(ctx context.Context, subject string) error {
	if err := ctx.Err(); err != nil {
		return wrap("publish", err)
	}
	s.subsMu.Lock()
	subs := make([]*subscriber, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.subsMu.Unlock()
	for _, sub := range subs {
		if sub.ctx.Err() == nil {
			sub.fn(subject)
		}
	}
	return nil
}

// Subscribe implements store.ChangeFeed.
func (s *Store) Subscribe(ctx context.Context, fn func(string)) error {
	if err := ctx.Err(); err != nil {
		return wrap("subscribe", err)
	}
	key := &subscriber{ctx: ctx, fn: fn}
	s.subsMu.Lock()
	s.subs[key] = struct{}{}
	s.subsMu.Unlock()
	context.AfterFunc(ctx, func() {
		s.subsMu.Lock()
		delete(s.subs, key)
		s.subsMu.Unlock()
	})
	return nil
}
