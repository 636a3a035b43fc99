package rocketchat_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store/memory"
)

// fakeRC answers in process (no sockets, so that synctest sees its waits):
// /api/v1/me as the user, users.info as the service account; it counts
// requests per path and those in flight, and holds each until gate is
// closed (when set).
type fakeRC struct {
	mu       sync.Mutex
	calls    map[string]int
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	gate     chan struct{}
	status   int // answer status for /me; 200 when 0
}

func (f *fakeRC) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	if f.calls == nil {
		f.calls = map[string]int{}
	}
	f.calls[r.URL.Path]++
	status := f.status
	f.mu.Unlock()
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for {
		m := f.maxSeen.Load()
		if n <= m || f.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	body := `{"_id":"u1","username":"alice","success":true}`
	if strings.HasSuffix(r.URL.Path, "users.info") {
		body = `{"user":{"_id":"u1","username":"alice","active":true},"success":true}`
	}
	if status == 0 {
		status = http.StatusOK
	}
	h := http.Header{"Content-Type": {"application/json"}}
	if status == http.StatusTooManyRequests {
		body = `{"success":false,"error":"Error, too many requests. Please slow down. You must wait 40 seconds before trying this endpoint again. [error-too-many-requests]"}`
	}
	return &http.Response{StatusCode: status, Header: h, Body: io.NopCloser(strings.NewReader(body)), Request: r}, nil
}

func (f *fakeRC) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[path]
}

func newPacedClient(t *testing.T, rt http.RoundTripper, o rocketchat.Options) *rocketchat.Client {
	t.Helper()
	o.BaseURL = "http://rc.example.test"
	o.HTTPClient = &http.Client{Transport: rt}
	c, err := rocketchat.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var person = rocketchat.Credentials{UserID: "u1", AuthToken: "person-token"}

// A mint storm of 20 calls at once sends at most MaxConcurrent to
// Rocket.Chat; the others wait their turn and all succeed.
func TestConcurrentCallsBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &fakeRC{gate: make(chan struct{})}
		c := newPacedClient(t, rc, rocketchat.Options{MaxConcurrent: 3})
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range errs {
			wg.Go(func() {
				_, errs[i] = c.UserInfoByID(t.Context(), rocketchat.Credentials{UserID: "admin", AuthToken: "pat"}, "u1")
			})
		}
		synctest.Wait() // every call is either at Rocket.Chat or waiting for a slot
		if n := rc.inFlight.Load(); n != 3 {
			t.Fatalf("%d calls in flight at once, want the bound of 3", n)
		}
		close(rc.gate)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
		}
		if n := rc.maxSeen.Load(); n > 3 {
			t.Fatalf("%d calls were in flight at once, want at most 3", n)
		}
	})
}

// A call waiting for a slot gives up with its context.
func TestSlotWaitHonoursContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rc := &fakeRC{gate: make(chan struct{})}
		c := newPacedClient(t, rc, rocketchat.Options{MaxConcurrent: 1, Timeout: time.Hour})
		go func() { _, _ = c.Me(t.Context(), person) }()
		synctest.Wait()
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		_, err := c.Me(ctx, person)
		if !errors.Is(err, context.DeadlineExceeded) || rc.count("/api/v1/me") != 1 {
			t.Fatalf("waiting call: %v after %d calls sent", err, rc.count("/api/v1/me"))
		}
		close(rc.gate)
	})
}

// The budget is shared by every instance on the store: two clients (two
// rcsso instances) with a budget of 5 /me calls a minute send 5 between
// them; the others are held back as rate limited with a Retry-After, and
// calls as the service account are not counted. A minute later the budget
// is renewed.
func TestBudgetSharedAcrossInstances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.New()
		rc := &fakeRC{}
		budget := &rocketchat.Budget{Counter: st, PerMinute: 5}
		a := newPacedClient(t, rc, rocketchat.Options{Budget: budget})
		b := newPacedClient(t, rc, rocketchat.Options{Budget: &rocketchat.Budget{Counter: st, PerMinute: 5}})
		held := 0
		for i := range 12 {
			c := a
			if i%2 == 1 {
				c = b
			}
			_, err := c.Me(t.Context(), person)
			if err == nil {
				continue
			}
			wait, limited := rocketchat.IsRateLimited(err)
			if !limited || !errors.Is(err, rocketchat.ErrBudgetSpent) || wait <= 0 || wait > time.Minute {
				t.Fatalf("call %d: %v (rate limited %v, retry after %s)", i, err, limited, wait)
			}
			if rocketchat.IsUnavailable(err) {
				t.Fatalf("a held-back call reads as Rocket.Chat being down: %v", err)
			}
			held++
		}
		if n := rc.count("/api/v1/me"); n != 5 || held != 7 {
			t.Fatalf("Rocket.Chat got %d /me calls and %d were held back; want 5 and 7", n, held)
		}
		for range 20 {
			if _, err := a.UserInfoByID(t.Context(), rocketchat.Credentials{UserID: "admin", AuthToken: "pat"}, "u1"); err != nil {
				t.Fatalf("service account call held back: %v", err)
			}
		}
		time.Sleep(time.Minute) // the fake clock: the budget's window ends
		if _, err := b.Me(t.Context(), person); err != nil {
			t.Fatalf("after a minute: %v", err)
		}
	})
}

// A 429 from Rocket.Chat spends the rest of the minute for every instance.
func TestRateLimitSpendsBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.New()
		rc := &fakeRC{status: http.StatusTooManyRequests}
		a := newPacedClient(t, rc, rocketchat.Options{Budget: &rocketchat.Budget{Counter: st, PerMinute: 5}})
		b := newPacedClient(t, rc, rocketchat.Options{Budget: &rocketchat.Budget{Counter: st, PerMinute: 5}})
		if _, err := a.Me(t.Context(), person); err == nil {
			t.Fatal("no error on a 429")
		}
		rc.status = 0
		_, err := b.Me(t.Context(), person)
		if !errors.Is(err, rocketchat.ErrBudgetSpent) || rc.count("/api/v1/me") != 1 {
			t.Fatalf("after a 429 on another instance: %v, %d calls sent", err, rc.count("/api/v1/me"))
		}
	})
}
