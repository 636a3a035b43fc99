package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// LimiterConfig sets the limits of a FailureLimiter. Zero fields take the
// defaults given with each.
type LimiterConfig struct {
	// Window is how long failures count, from a key's first attempt
	// (default 15 minutes).
	Window time.Duration
	// PerClient is how many failed logins one client (an IPv4 address or
	// an IPv6 /64) may make within Window, whatever the user names
	// (default 20).
	PerClient int
	// PerUserClient is how many failed logins one client may make for one
	// user name within Window (default 5). Only that client is refused for
	// that user: the user still logs in from their own.
	PerUserClient int
	// SlowDownAfter is how many failures for one user name, from all
	// clients within Window, start the slow-down (default 10): from then
	// on attempts for that user from clients they never logged in from are
	// spaced out, one per SlowDown (default 1 s), the spacing doubling
	// every SlowDownAfter further failures up to SlowDownMax (default
	// 30 s). Nobody is locked out: an attempt waits for its turn or is
	// told when to come back.
	SlowDownAfter         int
	SlowDown, SlowDownMax time.Duration
	// MaxWait is the longest an attempt waits for its turn under the
	// slow-down (default 2 s); later turns are refused with Retry-After.
	MaxWait time.Duration
	// KnownFor is how long a successful login exempts that (user, client)
	// pair from the slow-down (default 30 days).
	KnownFor time.Duration
}

func (c *LimiterConfig) defaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur(&c.Window, 15*time.Minute)
	def(&c.PerClient, 20)
	def(&c.PerUserClient, 5)
	def(&c.SlowDownAfter, 10)
	defDur(&c.SlowDown, time.Second)
	defDur(&c.SlowDownMax, 30*time.Second)
	defDur(&c.MaxWait, 2*time.Second)
	defDur(&c.KnownFor, 30*24*time.Hour)
}

// FailureLimiter limits password guessing on the local login form. Every
// attempt reserves its place (Reserve) before the password is checked, so
// parallel attempts cannot pass a limit together; a wrong password keeps
// the reservation (Attempt.Failed), a right one gives it back
// (Attempt.Succeeded), an attempt that was never checked gives it back too
// (Attempt.Cancel). Limits: per client, per (user, client), and a
// slow-down per user (LimiterConfig). It is in-memory (one rcsso
// instance) and holds at most maxEntries failure records and maxEntries
// known (user, client) pairs: when full, it drops expired records and then
// arbitrary ones.
type FailureLimiter struct {
	c   LimiterConfig
	now func() time.Time

	mu      sync.Mutex
	entries map[string]*failures
	known   map[string]time.Time // user\x00client → last successful login
}

type failures struct {
	count int
	start time.Time
	// next is, on a user's record, the earliest time of their next
	// attempt under the slow-down.
	next time.Time
}

// maxEntries bounds memory under a flood of distinct keys (about 300 bytes
// each).
const maxEntries = 100_000

// NewFailureLimiter returns a limiter with c's limits.
func NewFailureLimiter(c LimiterConfig) *FailureLimiter {
	c.defaults()
	return &FailureLimiter{c: c, now: time.Now, entries: map[string]*failures{}, known: map[string]time.Time{}}
}

// LoginRefusedError is a login attempt refused before its password was
// checked; classify answers it with 429 and Retry-After.
type LoginRefusedError struct {
	// Reason is RefusedClient, RefusedUserClient, RefusedSlowDown or
	// RefusedBusy.
	Reason string
	// RetryAfter is when the attempt may succeed.
	RetryAfter time.Duration
}

// Reasons of a LoginRefusedError (also logged as "reason").
const (
	RefusedClient     = "too many failed logins from this client"
	RefusedUserClient = "too many failed logins for this user from this client"
	RefusedSlowDown   = "too many failed logins for this user; slowed down"
	RefusedBusy       = "too many password checks at once"
)

func (e *LoginRefusedError) Error() string {
	return fmt.Sprintf("login refused: %s (retry after %v)", e.Reason, e.RetryAfter.Round(time.Second))
}

// Attempt is a reserved login attempt; exactly one of Failed, Succeeded
// or Cancel ends it.
type Attempt struct {
	// Wait is how long the attempt must wait for its turn (slow-down)
	// before its password is checked; at most LimiterConfig.MaxWait.
	Wait time.Duration

	l                    *FailureLimiter
	user, client         string
	perClient, perUC, pu *failures
	done                 bool
}

// Reserve takes one attempt for user (a normalised user name) from client
// (see limiterClient), or refuses it with a *LoginRefusedError.
func (l *FailureLimiter) Reserve(client, user string) (*Attempt, error) {
	user = limiterUser(user)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	ck, uck, uk := "c\x00"+client, "uc\x00"+user+"\x00"+client, "u\x00"+user
	if f := l.live(ck, now); f != nil && f.count >= l.c.PerClient {
		return nil, &LoginRefusedError{Reason: RefusedClient, RetryAfter: f.start.Add(l.c.Window).Sub(now)}
	}
	if f := l.live(uck, now); f != nil && f.count >= l.c.PerUserClient {
		return nil, &LoginRefusedError{Reason: RefusedUserClient, RetryAfter: f.start.Add(l.c.Window).Sub(now)}
	}
	var wait time.Duration
	if f := l.live(uk, now); f != nil && f.count >= l.c.SlowDownAfter && !l.isKnown(user, client, now) {
		turn := now
		if f.next.After(now) {
			turn = f.next
		}
		if wait = turn.Sub(now); wait > l.c.MaxWait {
			return nil, &LoginRefusedError{Reason: RefusedSlowDown, RetryAfter: wait}
		}
		f.next = turn.Add(l.spacing(f.count))
	}
	if len(l.entries)+3 > maxEntries {
		l.makeRoom(now)
	}
	a := &Attempt{Wait: wait, l: l, user: user, client: client,
		perClient: l.entry(ck, now), perUC: l.entry(uck, now), pu: l.entry(uk, now)}
	a.perClient.count++
	a.perUC.count++
	a.pu.count++
	return a, nil
}

// Failed ends an attempt whose password was wrong: it stays counted.
func (a *Attempt) Failed() {
	a.l.mu.Lock()
	a.done = true
	a.l.mu.Unlock()
}

// Succeeded ends an attempt whose password was right: it is not counted,
// the client's failures for this user are forgotten, and the client is
// known for this user (exempt from the slow-down) for KnownFor.
func (a *Attempt) Succeeded() {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.done {
		return
	}
	a.done = true
	a.perClient.count = max(a.perClient.count-1, 0)
	a.pu.count = max(a.pu.count-1, 0)
	a.perUC.count = 0
	now := l.now()
	if len(l.known) >= maxEntries {
		for k, t := range l.known {
			if now.Sub(t) >= l.c.KnownFor {
				delete(l.known, k)
			}
		}
		for k := range l.known {
			if len(l.known) < maxEntries*9/10 {
				break
			}
			delete(l.known, k)
		}
	}
	l.known[a.user+"\x00"+a.client] = now
}

// Cancel ends an attempt whose password was not checked (rcsso busy, the
// request ended, the identity source failed): it is not counted.
func (a *Attempt) Cancel() {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if a.done {
		return
	}
	a.done = true
	for _, f := range []*failures{a.perClient, a.perUC, a.pu} {
		f.count = max(f.count-1, 0)
	}
}

// live returns key's record if its window is still open.
func (l *FailureLimiter) live(key string, now time.Time) *failures {
	f, ok := l.entries[key]
	if !ok || now.Sub(f.start) >= l.c.Window {
		return nil
	}
	return f
}

// entry returns key's live record, starting a new window if needed.
func (l *FailureLimiter) entry(key string, now time.Time) *failures {
	if f := l.live(key, now); f != nil {
		return f
	}
	f := &failures{start: now}
	l.entries[key] = f
	return f
}

// makeRoom drops expired records, then arbitrary ones (Go's map order)
// until a tenth of the room is free, so the full sweep runs at most once
// per maxEntries/10 new records.
func (l *FailureLimiter) makeRoom(now time.Time) {
	for k, f := range l.entries {
		if now.Sub(f.start) >= l.c.Window && !f.next.After(now) {
			delete(l.entries, k)
		}
	}
	for k := range l.entries {
		if len(l.entries) < maxEntries*9/10 {
			break
		}
		delete(l.entries, k)
	}
}

func (l *FailureLimiter) isKnown(user, client string, now time.Time) bool {
	t, ok := l.known[user+"\x00"+client]
	return ok && now.Sub(t) < l.c.KnownFor
}

// spacing is the slow-down's interval after n failures for one user.
func (l *FailureLimiter) spacing(n int) time.Duration {
	d := l.c.SlowDown
	for i := (n - l.c.SlowDownAfter) / l.c.SlowDownAfter; i > 0 && d < l.c.SlowDownMax; i-- {
		d *= 2
	}
	return min(d, l.c.SlowDownMax)
}

// limiterUser keeps keys small: user names longer than an account may be
// (local.MaxUsernameLen) are replaced by their SHA-256.
func limiterUser(user string) string {
	if len(user) <= 256 {
		return user
	}
	sum := sha256.Sum256([]byte(user))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// limiterClient is the limiter's client for a client IP address: the address
// itself, or for IPv6 its /64 (one subscriber usually holds a whole /64).
// Unparsable input is returned as it is.
func limiterClient(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}
