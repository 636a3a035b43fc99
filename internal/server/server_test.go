package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/header"
	"github.com/rcsso/rcsso/internal/identity/local"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/websession"
)

const rcOrigin = "http://chat.example.test"

type countingMinter struct{ n atomic.Int64 }

func (m *countingMinter) Mint(_ context.Context, req mint.Request) (mint.Token, error) {
	l := req.Link
	m.n.Add(1)
	return mint.Token{Value: "resume-token-" + l.UserID, Kind: mint.LoginToken, UserID: l.UserID}, nil
}

type linkProv struct{}

func (linkProv) Ensure(_ context.Context, id identity.Identity) (store.Link, error) {
	return store.Link{Subject: id.Subject, UserID: "U1"}, nil
}

func newTestServer(t *testing.T) (*Server, *countingMinter, store.Store) {
	t.Helper()
	m := &countingMinter{}
	s, st := newTestServerWith(t, m)
	return s, m, st
}

// newTestServerWith is newTestServer with the minter m.
func newTestServerWith(t *testing.T, m mint.Minter) (*Server, store.Store) {
	t.Helper()
	st := memory.New()
	seal, _ := sealer.New(make([]byte, 32))
	b := mint.NewBroker(st, seal, m, linkProv{}, mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour}, nil)
	sessions := websession.New(st, websession.Options{CookieName: "rcsso_session", SameSite: http.SameSiteLaxMode, TTL: time.Hour})
	acct, _ := local.NewAccount("alice", "password123", "Alice", "alice@example.test", time.Now())
	_ = st.CreateAccount(context.Background(), acct)
	rc, _ := rocketchat.New(rocketchat.Options{BaseURL: "http://127.0.0.1:1"})
	pub, _ := url.Parse("http://sso.example.test")
	s := New(Options{
		PublicURL:        pub,
		RocketChatOrigin: rcOrigin,
		WebsiteOrigins:   []string{"http://www.example.test"},
		WebsiteName:      "Example",
		Identity: identity.Chain{
			header.New(header.Config{UserHeader: "X-Forwarded-User", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}}),
			local.New("", st, sessions),
		},
		Sessions: sessions,
		Broker:   b,
		Store:    st,
		RC:       rc,
	})
	return s, st
}

func do(s *Server, method, target string, hdr map[string]string, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.1:4000"
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func TestAPIURL(t *testing.T) {
	s, m, _ := newTestServer(t)
	cases := []struct {
		name, method string
		hdr          map[string]string
		status       int
		acao         string
		token        bool
	}{
		{"logged in, GET from Rocket.Chat", "GET", map[string]string{"Origin": rcOrigin, "X-Forwarded-User": "alice"}, 200, rcOrigin, true},
		{"logged in, POST from Rocket.Chat", "POST", map[string]string{"Origin": rcOrigin, "X-Forwarded-User": "alice"}, 200, rcOrigin, true},
		{"not logged in", "POST", map[string]string{"Origin": rcOrigin}, 401, rcOrigin, false},
		{"hostile origin", "POST", map[string]string{"Origin": "http://evil.test", "X-Forwarded-User": "alice"}, 403, "", false},
		{"look-alike origin", "GET", map[string]string{"Origin": rcOrigin + ".evil.test", "X-Forwarded-User": "alice"}, 403, "", false},
		{"null origin", "GET", map[string]string{"Origin": "null", "X-Forwarded-User": "alice"}, 403, "", false},
		{"method", "DELETE", map[string]string{"Origin": rcOrigin, "X-Forwarded-User": "alice"}, 405, rcOrigin, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := do(s, c.method, "/api/rocketchat/token", c.hdr, "")
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if got := w.Header().Get("Access-Control-Allow-Origin"); got != c.acao {
				t.Fatalf("ACAO %q, want %q", got, c.acao)
			}
			if c.acao != "" && w.Header().Get("Access-Control-Allow-Credentials") != "true" {
				t.Fatal("missing Access-Control-Allow-Credentials")
			}
			if !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Origin") {
				t.Fatal("missing Vary: Origin")
			}
			hasToken := strings.Contains(w.Body.String(), "loginToken")
			if hasToken != c.token {
				t.Fatalf("token in body = %v: %s", hasToken, w.Body)
			}
			if c.token {
				if ct := w.Header().Get("Content-Type"); ct != "application/json" {
					t.Fatalf("Content-Type %q", ct)
				}
				if w.Body.String() != `{"loginToken":"resume-token-U1"}`+"\n" {
					t.Fatalf("body %q", w.Body)
				}
			}
		})
	}
	if m.n.Load() != 1 {
		t.Fatalf("minted %d tokens, want 1 (reuse across requests; none for refused origins)", m.n.Load())
	}
}

func TestPreflight(t *testing.T) {
	s, _, _ := newTestServer(t)
	w := do(s, "OPTIONS", "/api/rocketchat/token", map[string]string{"Origin": rcOrigin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}, "")
	if w.Code != 204 || w.Header().Get("Access-Control-Allow-Origin") != rcOrigin || w.Header().Get("Access-Control-Allow-Headers") != "Content-Type" || w.Header().Get("Access-Control-Allow-Methods") == "" {
		t.Fatalf("preflight: %d %v", w.Code, w.Header())
	}
	w = do(s, "OPTIONS", "/api/rocketchat/token", map[string]string{"Origin": "http://evil.test", "Access-Control-Request-Method": "POST"}, "")
	if w.Code != 403 || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("hostile preflight: %d %v", w.Code, w.Header())
	}
}

func TestLoginFormFlow(t *testing.T) {
	s, m, _ := newTestServer(t)
	w := do(s, "GET", "/login", map[string]string{"Sec-Fetch-Dest": "iframe"}, "")
	csp := w.Header().Get("Content-Security-Policy")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `id="login-form"`) {
		t.Fatalf("login page: %d %s", w.Code, w.Body)
	}
	if !strings.Contains(csp, "frame-ancestors "+rcOrigin+" http://www.example.test") || w.Header().Get("X-Frame-Options") != "" {
		t.Fatalf("IFrame URL framing headers: CSP %q XFO %q", csp, w.Header().Get("X-Frame-Options"))
	}
	form := "username=alice&password=wrong-password"
	hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "iframe"}
	w = do(s, "POST", "/login", hdr, form)
	if w.Code != 401 || !strings.Contains(w.Body.String(), "Wrong user name or password") || len(w.Result().Cookies()) != 0 || m.n.Load() != 0 {
		t.Fatalf("wrong password: %d cookies=%d mints=%d", w.Code, len(w.Result().Cookies()), m.n.Load())
	}
	w = do(s, "POST", "/login", hdr, "username=alice&password=password123")
	if w.Code != 200 {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	body := w.Body.String()
	if !strings.Contains(body, `"loginToken":"resume-token-U1"`) || !strings.Contains(body, `"rcOrigin":"`+rcOrigin+`"`) {
		t.Fatalf("hand-over page lacks token data: %s", body)
	}
	c := w.Result().Cookies()
	if len(c) != 1 || !c[0].HttpOnly || c[0].SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie attributes: %+v", c)
	}
	// The session now answers the API URL.
	r := httptest.NewRequest("GET", "/api/rocketchat/token", nil)
	r.Header.Set("Origin", rcOrigin)
	r.AddCookie(c[0])
	rw := httptest.NewRecorder()
	s.ServeHTTP(rw, r)
	if rw.Code != 200 {
		t.Fatalf("API URL with session: %d", rw.Code)
	}
}

func TestLoginCSRFAndRateLimit(t *testing.T) {
	s, _, _ := newTestServer(t)
	w := do(s, "POST", "/login", map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "http://evil.test", "Sec-Fetch-Site": "cross-site"}, "username=alice&password=password123")
	if w.Code != 403 || len(w.Result().Cookies()) != 0 {
		t.Fatalf("cross-site form post: %d", w.Code)
	}
	hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin"}
	for range 5 {
		do(s, "POST", "/login", hdr, "username=alice&password=nope-nope")
	}
	w = do(s, "POST", "/login", hdr, "username=alice&password=password123")
	if w.Code != 429 || len(w.Result().Cookies()) != 0 {
		t.Fatalf("6th attempt after 5 failures: %d, want 429 even with the right password", w.Code)
	}
}

func TestSafeReturnTo(t *testing.T) {
	s, _, _ := newTestServer(t)
	for in, want := range map[string]string{
		"/chat":                        "/chat",
		"//evil.test/x":                "",
		"/\\evil.test":                 "",
		"http://evil.test/":            "",
		"http://www.example.test/home": "http://www.example.test/home",
		rcOrigin + "/home":             rcOrigin + "/home",
		"javascript:alert(1)":          "",
	} {
		if got := s.safeReturnTo(in); got != want {
			t.Errorf("safeReturnTo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHealthz(t *testing.T) {
	s, _, _ := newTestServer(t)
	w := do(s, "GET", "/healthz", nil, "")
	b, _ := io.ReadAll(w.Body)
	if w.Code != 200 || !strings.Contains(string(b), "ok") {
		t.Fatal(w.Code)
	}
	w = do(s, "GET", "/readyz", nil, "")
	if w.Code != 503 || !strings.Contains(w.Body.String(), "rocketchat") {
		t.Fatalf("readyz with Rocket.Chat down: %d %s", w.Code, w.Body)
	}
}

type brokenSource struct{}

func (brokenSource) Name() string { return "whoami" }
func (brokenSource) Identify(*http.Request) (identity.Identity, error) {
	return identity.Identity{}, fmt.Errorf("whoami endpoint answered 500: %w", identity.ErrSourceUnavailable)
}

// A source that cannot tell (website endpoint down) is not "logged out":
// the API URL answers 502 with a JSON error, and mints nothing.
func TestSourceUnavailableIs502(t *testing.T) {
	s, m, _ := newTestServer(t)
	s.o.Identity = identity.Chain{brokenSource{}}
	w := do(s, "POST", "/api/rocketchat/token", map[string]string{"Origin": rcOrigin}, "")
	if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), `"error"`) || m.n.Load() != 0 {
		t.Fatalf("status %d body %s mints %d", w.Code, w.Body, m.n.Load())
	}
	if w.Header().Get("Access-Control-Allow-Origin") != rcOrigin {
		t.Fatal("error answers carry CORS too, so Rocket.Chat's client can read the status")
	}
}

// Storage Access Headers: a credentialed fetch whose cookie the browser held
// back as third-party is told to retry with it (only for the allowed origin).
func TestActivateStorageAccess(t *testing.T) {
	s, _, _ := newTestServer(t)
	w := do(s, "POST", "/api/rocketchat/token", map[string]string{"Origin": rcOrigin, "Sec-Fetch-Storage-Access": "inactive"}, "")
	if got := w.Header().Get("Activate-Storage-Access"); got != `retry; allowed-origin="`+rcOrigin+`"` {
		t.Fatalf("Activate-Storage-Access = %q", got)
	}
	w = do(s, "POST", "/api/rocketchat/token", map[string]string{"Origin": "http://evil.test", "Sec-Fetch-Storage-Access": "inactive"}, "")
	if w.Header().Get("Activate-Storage-Access") != "" {
		t.Fatal("storage access offered to a hostile origin")
	}
}
