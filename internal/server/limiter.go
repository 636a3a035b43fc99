package server

import (
	"sync"
	"time"
)

// FailureLimiter counts failed logins per key (client IP, user name) in a
// fixed window and refuses further attempts once a key reaches its limit,
// until the window ends. It is in-memory (one rcsso instance).
type FailureLimiter struct {
	perUser, perIP int
	window         time.Duration
	now            func() time.Time

	mu      sync.Mutex
	entries map[string]*failures
}

type failures struct {
	count int
	start time.Time
}

// maxEntries bounds memory under a flood of distinct keys.
const maxEntries = 100_000

// NewFailureLimiter allows perUser failures per user name and perIP per
// client IP within window.
func NewFailureLimiter(perUser int, window time.Duration, perIP int) *FailureLimiter {
	return &FailureLimiter{perUser: perUser, perIP: perIP, window: window, now: time.Now, entries: map[string]*failures{}}
}

// Blocked reports whether ip or user is blocked and for how long.
func (l *FailureLimiter) Blocked(ip, user string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	check := func(key string, limit int) {
		f, ok := l.entries[key]
		if !ok {
			return
		}
		if now.Sub(f.start) >= l.window {
			delete(l.entries, key)
			return
		}
		if f.count >= limit {
			wait = max(wait, l.window-now.Sub(f.start))
		}
	}
	check("ip\x00"+ip, l.perIP)
	check("user\x00"+user, l.perUser)
	return wait, wait > 0
}

// Fail records a failed attempt.
func (l *FailureLimiter) Fail(ip, user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.entries) >= maxEntries {
		for k, f := range l.entries {
			if now.Sub(f.start) >= l.window {
				delete(l.entries, k)
			}
		}
	}
	for _, key := range []string{"ip\x00" + ip, "user\x00" + user} {
		f, ok := l.entries[key]
		if !ok || now.Sub(f.start) >= l.window {
			if len(l.entries) >= maxEntries {
				continue
			}
			f = &failures{start: now}
			l.entries[key] = f
		}
		f.count++
	}
}

// Reset forgets the user's failures after a successful login.
func (l *FailureLimiter) Reset(user string) {
	l.mu.Lock()
	delete(l.entries, "user\x00"+user)
	l.mu.Unlock()
}
