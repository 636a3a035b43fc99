package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/websession"
)

// fakePassword is a PasswordAuthenticator that counts the passwords it
// checks ("hashes"), how many at once, and, while hold is open, keeps
// every check waiting.
type fakePassword struct {
	good string // the one right password (any user name)
	hold chan struct{}

	calls    atomic.Int64
	mu       sync.Mutex
	inflight int
	peak     int
}

func (f *fakePassword) Name() string { return "local" }
func (f *fakePassword) Identify(*http.Request) (identity.Identity, error) {
	return identity.Identity{}, identity.ErrNotLoggedIn
}

func (f *fakePassword) Authenticate(_ context.Context, username, password string) (identity.Identity, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.inflight++
	f.peak = max(f.peak, f.inflight)
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight--
		f.mu.Unlock()
	}()
	if f.hold != nil {
		<-f.hold
	}
	if password != f.good {
		return identity.Identity{}, identity.ErrBadCredentials
	}
	return identity.Identity{Subject: "local:" + username, Source: "local", Username: username}, nil
}

func (f *fakePassword) counts() (inflight, peak int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inflight, f.peak
}

// newPasswordServer is a Server whose only identity source is auth, with
// the default login limits. Inside a synctest bubble, call it inside.
func newPasswordServer(t *testing.T, auth *fakePassword) *Server {
	t.Helper()
	st := memory.New()
	seal, _ := sealer.New(make([]byte, 32))
	b := mint.NewBroker(st, seal, &countingMinter{}, linkProv{}, mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour}, nil)
	sessions := websession.New(st, websession.Options{CookieName: "rcsso_session", SameSite: http.SameSiteLaxMode, TTL: time.Hour})
	rc, _ := rocketchat.New(rocketchat.Options{BaseURL: "http://127.0.0.1:1"})
	pub, _ := url.Parse("http://sso.example.test")
	return New(Options{
		PublicURL:        pub,
		RocketChatOrigin: rcOrigin,
		WebsiteOrigins:   []string{"http://www.example.test"},
		Identity:         identity.Chain{auth},
		Sessions:         sessions,
		Broker:           b,
		Store:            st,
		RC:               rc,
	})
}

// loginFrom posts the login form from the client address ip; return_to
// makes a successful login answer 303.
func loginFrom(s *Server, ip, username, password string) *httptest.ResponseRecorder {
	form := url.Values{"username": {username}, "password": {password}, "return_to": {"/chat"}}
	r := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	r.RemoteAddr = ip + ":40000"
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// parallelLogins fires n logins at once (username(i) from ip(i)) while
// every password check is held, lets the checks finish once everything
// else waits, and returns the responses.
func parallelLogins(t *testing.T, s *Server, auth *fakePassword, n int, ip func(int) string, username func(int) string) []*httptest.ResponseRecorder {
	t.Helper()
	out := make([]*httptest.ResponseRecorder, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { out[i] = loginFrom(s, ip(i), username(i), "guess-"+strconv.Itoa(i)) })
	}
	synctest.Wait()
	close(auth.hold)
	wg.Wait()
	return out
}

func tally(t *testing.T, ws []*httptest.ResponseRecorder) map[int]int {
	t.Helper()
	codes := map[int]int{}
	for _, w := range ws {
		codes[w.Code]++
		if w.Code == http.StatusTooManyRequests && w.Header().Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After: %s", w.Body)
		}
	}
	return codes
}

// Issue 8 item 1: 60 parallel guesses for one user from one client were
// all evaluated although the limit is 5 (the limiter checked before the
// hash and counted after).
func TestLoginParallelGuessesForOneUser(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		auth := &fakePassword{good: "right-password", hold: make(chan struct{})}
		s := newPasswordServer(t, auth)
		ws := parallelLogins(t, s, auth, 60, func(int) string { return "198.51.100.7" }, func(int) string { return "alice" })
		codes := tally(t, ws)
		if n := auth.calls.Load(); n > 5 || codes[http.StatusUnauthorized] != int(n) || codes[http.StatusTooManyRequests] != 60-int(n) {
			t.Fatalf("60 parallel guesses for alice from one client: %d passwords checked (want ≤ 5), answers %v (want the rest 429)", n, codes)
		}
	})
}

// 500 parallel attempts from one client, each for another user name: at
// most the per-client limit (20) are evaluated.
func TestLoginParallelFromOneClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		auth := &fakePassword{good: "right-password", hold: make(chan struct{})}
		s := newPasswordServer(t, auth)
		ws := parallelLogins(t, s, auth, 500, func(int) string { return "198.51.100.7" }, func(i int) string { return "u" + strconv.Itoa(i) })
		codes := tally(t, ws)
		if n := auth.calls.Load(); n > 20 || codes[http.StatusUnauthorized] != int(n) || codes[http.StatusTooManyRequests] != 500-int(n) {
			t.Fatalf("500 parallel attempts from one client: %d passwords checked (want ≤ 20), answers %v (want the rest 429)", n, codes)
		}
	})
}

// Password hashing (argon2id, 19 MiB each) runs at most GOMAXPROCS − 1
// (at least 1) at once, leaving a CPU to everything else; an attempt that finds no free slot for a few seconds gets 429 with
// Retry-After and a message on the login form.
func TestLoginHashesBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		auth := &fakePassword{good: "right-password", hold: make(chan struct{})}
		s := newPasswordServer(t, auth)
		bound := max(runtime.GOMAXPROCS(0)-1, 1)
		n := 4*bound + 4
		out := make([]*httptest.ResponseRecorder, n)
		var wg sync.WaitGroup
		for i := range n { // distinct clients and users: no failure limit applies
			wg.Go(func() { out[i] = loginFrom(s, "198.51.100."+strconv.Itoa(i+1), "u"+strconv.Itoa(i), "wrong") })
		}
		synctest.Wait()
		if inflight, _ := auth.counts(); inflight > bound {
			t.Errorf("%d password checks at once, want at most GOMAXPROCS − 1 = %d", inflight, bound)
		}
		time.Sleep(time.Minute) // fake time: the waiting attempts give up
		synctest.Wait()
		close(auth.hold)
		wg.Wait()
		codes := tally(t, out)
		_, peak := auth.counts()
		if peak > bound || codes[http.StatusUnauthorized] != peak || codes[http.StatusTooManyRequests] != n-peak {
			t.Fatalf("peak %d checks at once (bound %d), answers %v", peak, bound, codes)
		}
		for _, w := range out {
			if w.Code == http.StatusTooManyRequests && !strings.Contains(w.Body.String(), `id="login-form"`) {
				t.Fatalf("a refused attempt shows the login form again with the reason: %s", w.Body)
			}
		}
	})
}

// An attacker's wrong passwords for alice lock out the attacker's client,
// not alice: she logs in from her own client. Even after failures from
// many clients she is slowed down, never locked out, and a client she
// logged in from before is not slowed down at all.
func TestLoginAttackerCannotLockOutUser(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		auth := &fakePassword{good: "right-password"}
		s := newPasswordServer(t, auth)
		if w := loginFrom(s, "192.0.2.50", "alice", "right-password"); w.Code != http.StatusSeeOther {
			t.Fatalf("alice's first login: %d", w.Code)
		}
		for i := range 5 {
			if w := loginFrom(s, "203.0.113.9", "alice", "guess-"+strconv.Itoa(i)); w.Code != http.StatusUnauthorized {
				t.Fatalf("guess %d: %d", i, w.Code)
			}
		}
		if w := loginFrom(s, "203.0.113.9", "alice", "guess-6"); w.Code != http.StatusTooManyRequests {
			t.Fatalf("6th guess from the attacker's client: %d, want 429", w.Code)
		}
		if w := loginFrom(s, "192.0.2.77", "alice", "right-password"); w.Code != http.StatusSeeOther || w.Header().Get("Location") != "http://sso.example.test/chat" {
			t.Fatalf("alice from another client after the attacker's 5 failures: %d %s, want 303 to /chat", w.Code, w.Body)
		}

		// A distributed attack: 5 guesses from each of 40 clients.
		for c := range 40 {
			for i := range 5 {
				loginFrom(s, "203.0.113."+strconv.Itoa(100+c), "alice", "guess-"+strconv.Itoa(i))
			}
		}
		start := time.Now()
		if w := loginFrom(s, "192.0.2.50", "alice", "right-password"); w.Code != http.StatusSeeOther || time.Since(start) > 0 {
			t.Fatalf("alice from the client she used before, under attack: %d after %v, want 303 at once", w.Code, time.Since(start))
		}
		var w *httptest.ResponseRecorder
		for try := range 3 {
			w = loginFrom(s, "192.0.2.99", "alice", "right-password")
			if w.Code != http.StatusTooManyRequests {
				break
			}
			retry, err := strconv.Atoi(w.Header().Get("Retry-After"))
			if err != nil || retry > 60 {
				t.Fatalf("try %d: Retry-After %q, want at most a minute", try, w.Header().Get("Retry-After"))
			}
			time.Sleep(time.Duration(retry) * time.Second)
		}
		if w.Code != http.StatusSeeOther || time.Since(start) > 2*time.Minute {
			t.Fatalf("alice from a new client under a distributed attack: %d after %v, want 303 within 2 minutes", w.Code, time.Since(start))
		}
	})
}

// Behind a reverse proxy (trusted_proxies), the login limits count the
// client named by X-Forwarded-For, not the proxy: one client's failures do
// not lock everybody out, and a client cannot pick its own address by
// sending X-Forwarded-For itself (only what the trusted proxy appended
// counts). Without trusted_proxies the header is ignored.
func TestClientAddrBehindProxy(t *testing.T) {
	s, _, _ := newTestServer(t)
	s.o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	addr := func(peer string, xff ...string) string {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = peer + ":4000"
		for _, v := range xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		return s.clientAddr(r)
	}
	for _, c := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"192.0.2.1", []string{"203.0.113.9"}, "203.0.113.9"},
		{"192.0.2.1", []string{"6.6.6.6, 203.0.113.9"}, "203.0.113.9"},              // the client's own prefix is ignored
		{"192.0.2.1", []string{"6.6.6.6", "203.0.113.9, 192.0.2.7"}, "203.0.113.9"}, // two proxies
		{"192.0.2.1", []string{"not-an-ip, 203.0.113.9"}, "203.0.113.9"},
		{"192.0.2.1", []string{"203.0.113.9, garbage"}, "192.0.2.1"},
		{"192.0.2.1", nil, "192.0.2.1"},
		{"198.51.100.4", []string{"203.0.113.9"}, "198.51.100.4"}, // not a trusted proxy: header ignored
	} {
		if got := addr(c.peer, c.xff...); got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: client %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
	s.o.TrustedProxies = nil
	if got := addr("192.0.2.1", "203.0.113.9"); got != "192.0.2.1" {
		t.Errorf("without trusted_proxies: %s", got)
	}
}

// Through the proxy, an attacker's failures spend the attacker's limit,
// not the proxy's: another visitor behind the same proxy still gets to try.
func TestLoginLimitsPerClientBehindProxy(t *testing.T) {
	auth := &fakePassword{}
	s := newPasswordServer(t, auth)
	s.o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}
	via := func(client, username, password string) *httptest.ResponseRecorder {
		form := url.Values{"username": {username}, "password": {password}, "return_to": {"/chat"}}
		r := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
		r.RemoteAddr = "192.0.2.1:40000"
		r.Header.Set("X-Forwarded-For", client)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		return w
	}
	for i := range 25 {
		via("203.0.113.66", fmt.Sprintf("victim%d", i), "wrong")
	}
	if w := via("203.0.113.66", "someone", "wrong"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("the attacker is not limited: %d", w.Code)
	}
	if w := via("198.51.100.7", "someone", "wrong"); w.Code != http.StatusUnauthorized {
		t.Fatalf("another visitor behind the proxy: %d, want 401 (evaluated), not 429", w.Code)
	}
}
