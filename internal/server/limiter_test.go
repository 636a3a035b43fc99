package server

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestLimiterClient(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":              "192.0.2.1",
		"::ffff:192.0.2.1":       "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":   "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1":   "2001:db8:1:2::/64",
		"2001:db8:1:3::1":        "2001:db8:1:3::/64",
		"fe80::1%eth0":           "fe80::/64",
		"not an address":         "not an address",
		"[2001:db8::1]:443":      "[2001:db8::1]:443",
		"2001:0db8:0001:0002::9": "2001:db8:1:2::/64",
	} {
		if got := limiterClient(in); got != want {
			t.Errorf("limiterClient(%q) = %q, want %q", in, got, want)
		}
	}
}

func newTestLimiter(now *time.Time) *FailureLimiter {
	l := NewFailureLimiter(LimiterConfig{})
	l.now = func() time.Time { return *now }
	return l
}

func refusal(t *testing.T, err error) *LoginRefusedError {
	t.Helper()
	var le *LoginRefusedError
	if !errors.As(err, &le) {
		t.Fatalf("want a *LoginRefusedError, got %v", err)
	}
	return le
}

// Attempts that were never checked give their place back; wrong passwords
// keep it; a right password clears the client's failures for the user.
func TestLimiterReservations(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newTestLimiter(&now)
	for range 50 {
		a, err := l.Reserve("c1", "alice")
		if err != nil {
			t.Fatalf("cancelled attempts count: %v", err)
		}
		a.Cancel()
	}
	for range 4 {
		a, _ := l.Reserve("c1", "alice")
		a.Failed()
	}
	a, _ := l.Reserve("c1", "alice")
	a.Succeeded()
	for range 5 {
		a, err := l.Reserve("c1", "alice")
		if err != nil {
			t.Fatalf("a success clears the client's failures for the user: %v", err)
		}
		a.Failed()
	}
	_, err := l.Reserve("c1", "alice")
	if le := refusal(t, err); le.Reason != RefusedUserClient || le.RetryAfter != 15*time.Minute {
		t.Fatalf("6th failure: %+v", le)
	}
	if a, err := l.Reserve("c2", "alice"); err != nil || a.Wait != 0 {
		t.Fatalf("alice from another client: %v", err)
	}
	now = now.Add(15 * time.Minute)
	if _, err := l.Reserve("c1", "alice"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// After SlowDownAfter failures for a user from all clients, new clients
// get turns SlowDown apart (waiting at most MaxWait, else told when to
// come back); a client the user logged in from before is not slowed.
func TestLimiterSlowDown(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newTestLimiter(&now)
	a, _ := l.Reserve("home", "alice")
	a.Succeeded()
	for i := range 10 {
		a, err := l.Reserve("attacker"+strconv.Itoa(i/5), "alice")
		if err != nil || a.Wait != 0 {
			t.Fatalf("failure %d: wait %v, %v", i, a.Wait, err)
		}
		a.Failed()
	}
	for i, want := range []time.Duration{0, time.Second, 2 * time.Second} {
		a, err := l.Reserve("new"+strconv.Itoa(i), "alice")
		if err != nil || a.Wait != want {
			t.Fatalf("attempt %d under slow-down: wait %v err %v, want wait %v", i, a.Wait, err, want)
		}
		a.Failed()
	}
	_, err := l.Reserve("new9", "alice")
	if le := refusal(t, err); le.Reason != RefusedSlowDown || le.RetryAfter != 3*time.Second {
		t.Fatalf("turn beyond MaxWait: %+v", le)
	}
	if a, err := l.Reserve("home", "alice"); err != nil || a.Wait != 0 {
		t.Fatalf("alice's known client under slow-down: %v", err)
	}
	if got := l.spacing(1000); got != 30*time.Second {
		t.Fatalf("spacing after 1000 failures = %v, want the 30 s cap", got)
	}
}

// Hostile input: a flood of distinct clients and long user names keeps the
// limiter within maxEntries records of bounded size, and it still limits.
func TestLimiterFloodBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newTestLimiter(&now)
	long := strings.Repeat("x", 300)
	for i := range maxEntries + maxEntries/5 {
		a, err := l.Reserve("c"+strconv.Itoa(i), long+strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		a.Failed()
		a.Succeeded() // after Failed: no effect
	}
	if n := len(l.entries); n > maxEntries {
		t.Fatalf("%d records, want at most %d", n, maxEntries)
	}
	for k := range l.entries {
		if len(k) > 400 {
			t.Fatalf("record key of %d bytes", len(k))
		}
	}
	for range 5 {
		a, _ := l.Reserve("late", "bob")
		a.Failed()
	}
	if _, err := l.Reserve("late", "bob"); err == nil {
		t.Fatal("a full limiter stopped limiting")
	}
}
