package rcemu

import (
	"sync"
	"time"
)

// rateLimiter emulates the Meteor RateLimiter rules Rocket.Chat installs per
// REST route (spec §4.14): each rule (route+method) counts calls per client
// IP and resets all of its counters once an interval has passed since its
// last reset. A call is refused when, after counting it, the IP has more
// than the allowed number of calls in the current window.
type rateLimiter struct {
	mu    sync.Mutex
	rules map[string]*rateRule
}

type rateRule struct {
	lastReset time.Time
	counters  map[string]int
}

func newRateLimiter() *rateLimiter { return &rateLimiter{rules: map[string]*rateRule{}} }

// hit counts one call of ip on rule key and reports whether it is allowed,
// how many calls remain in the window and the time until the window resets.
// The window of a rule starts with its first call.
func (l *rateLimiter) hit(key, ip string, now time.Time, limit int, interval time.Duration) (allowed bool, remaining int, reset time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.rules[key]
	if r == nil {
		r = &rateRule{lastReset: now, counters: map[string]int{}}
		l.rules[key] = r
	}
	if now.Sub(r.lastReset) >= interval {
		r.lastReset = now
		r.counters = map[string]int{}
	}
	r.counters[ip]++
	n := r.counters[ip]
	reset = interval - now.Sub(r.lastReset)
	if n > limit {
		return false, 0, reset
	}
	return true, limit - n, reset
}

func (l *rateLimiter) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rules = map[string]*rateRule{}
}
