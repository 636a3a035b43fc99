package server

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/mint"
)

// checkingMinter mints one token per call and answers Validate like
// Rocket.Chat's GET /api/v1/me: ErrRejected once the token was revoked.
// Validate waits for gate (when set) so that tests can hold concurrent
// checks in flight.
type checkingMinter struct {
	countingMinter
	checks  atomic.Int64
	revoked atomic.Bool
	gate    chan struct{}
}

func (m *checkingMinter) Validate(ctx context.Context, _ mint.Token) error {
	m.checks.Add(1)
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if m.revoked.Load() {
		return mint.ErrRejected
	}
	return nil
}

// The API URL's Rocket.Chat cost per client generation (issue 9, item 1):
// page views of 8.x clients (no Content-Type) cost nothing; a call from a
// 6.2–7.10 client (Content-Type: application/json) is answered with a token
// Rocket.Chat has just confirmed; after a chat logout the real client's
// double call costs one check, and nobody gets the revoked token.
func TestAPIURLRevalidatesFetchClients(t *testing.T) {
	m := &checkingMinter{}
	s, _ := newTestServerWith(t, m)
	l := map[string]string{"Origin": rcOrigin, "X-Forwarded-User": "alice"}
	f := map[string]string{"Origin": rcOrigin, "X-Forwarded-User": "alice", "Content-Type": "application/json"}
	call := func(hdr map[string]string) int {
		w := do(s, http.MethodPost, "/api/rocketchat/token", hdr, "")
		if w.Code == http.StatusOK && !strings.Contains(w.Body.String(), `"loginToken"`) {
			t.Fatalf("200 without a token: %s", w.Body)
		}
		return w.Code
	}

	if c := call(l); c != 200 || m.n.Load() != 1 {
		t.Fatalf("first visit: %d, minted %d", c, m.n.Load())
	}
	for range 20 {
		if c := call(l); c != 200 {
			t.Fatalf("8.x page view: %d", c)
		}
	}
	if n := m.checks.Load(); n != 0 {
		t.Fatalf("20 page views of an 8.x client asked Rocket.Chat %d times", n)
	}

	// A 6.2–7.10 client without a session: one check, then the token.
	if c := call(f); c != 200 || m.checks.Load() != 1 {
		t.Fatalf("fetch client: %d after %d checks", c, m.checks.Load())
	}
	var wg sync.WaitGroup
	codes := make([]int, 2)

	// The person logs out in the chat: Rocket.Chat deletes the token. The
	// client's two calls right after it, at once: one check, two 401s.
	m.revoked.Store(true)
	m.gate = make(chan struct{})
	for i := range codes {
		wg.Go(func() { codes[i] = call(f) })
	}
	waitFor(t, func() bool { return m.checks.Load() == 2 })
	close(m.gate)
	wg.Wait()
	m.gate = nil
	if codes[0] != 401 || codes[1] != 401 {
		t.Fatalf("post-logout calls: %v, want 401s", codes)
	}
	// Later calls, from any generation, ask Rocket.Chat nothing and mint nothing.
	for _, hdr := range []map[string]string{f, f, l, l} {
		if c := call(hdr); c != 401 {
			t.Fatalf("after the chat logout: %d", c)
		}
	}
	if n, minted := m.checks.Load(), m.n.Load(); n != 2 || minted != 1 {
		t.Fatalf("after the chat logout: %d checks, %d mints; want 2, 1", n, minted)
	}
}

// The same double call one after the other also costs one check: the
// first marks the chat logout, the second finds the mark.
func TestAPIURLSequentialPostLogoutCalls(t *testing.T) {
	m := &checkingMinter{}
	s, _ := newTestServerWith(t, m)
	f := map[string]string{"Origin": rcOrigin, "X-Forwarded-User": "alice", "Content-Type": "application/json; charset=utf-8"}
	if w := do(s, http.MethodGet, "/api/rocketchat/token", f, ""); w.Code != 200 {
		t.Fatalf("first visit: %d %s", w.Code, w.Body)
	}
	m.revoked.Store(true)
	for range 2 {
		if w := do(s, http.MethodGet, "/api/rocketchat/token", f, ""); w.Code != 401 {
			t.Fatalf("post-logout call: %d %s", w.Code, w.Body)
		}
	}
	if n := m.checks.Load(); n != 1 {
		t.Fatalf("the double call asked Rocket.Chat %d times, want 1", n)
	}
}

// Hostile Content-Type values never make a call a fetch-client call unless
// the media type is exactly application/json.
func TestFetchClient(t *testing.T) {
	for ct, want := range map[string]bool{
		"":                                false,
		"application/json":                true,
		"Application/JSON; charset=UTF-8": true,
		"application/json;;":              false,
		"application/jsonp":               false,
		"text/plain":                      false,
		"application/json, text/plain":    false,
		strings.Repeat("a", 1<<16):        false,
		"multipart/form-data; boundary=x": false,
	} {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Content-Type", ct)
		if got := fetchClient(r); got != want {
			t.Errorf("fetchClient(%.40q) = %v, want %v", ct, got, want)
		}
	}
}

func FuzzFetchClient(f *testing.F) {
	for _, s := range []string{"", "application/json", "application/json; charset=utf-8", "text/plain", "application/json;;", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		r.Header["Content-Type"] = []string{ct}
		if fetchClient(r) && !strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct)), "application/json") {
			t.Fatalf("fetchClient(%q) = true", ct)
		}
	})
}

// waitFor polls cond every millisecond for at most 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("condition not met within 5 s")
		}
	}
}
