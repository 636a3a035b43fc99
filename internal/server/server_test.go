package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
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
	"github.com/rcsso/rcsso/internal/store/sqlite"
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
			header.New(header.Options{UserHeader: "X-Forwarded-User", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}}),
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

// The user agents of Rocket.Chat's mobile app's login WebView
// (Rocket.Chat.ReactNative app/lib/constants/userAgent.ts).
const (
	iosAppUA     = "Mozilla/5.0 (iPhone; CPU iPhone OS 15_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.5 Mobile/15E148 Safari/604.1"
	androidAppUA = "Mozilla/5.0 (Linux; Android 12; SM-A315G) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/91.0.4472.114 Mobile Safari/537.36"
)

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
		// Rocket.Chat's mobile app's WebView takes the token only from the
		// IFrame URL: the API URL sends it there (mobileapp.go).
		{"mobile app WebView, iOS", "POST", map[string]string{"Origin": rcOrigin, "X-Forwarded-User": "alice", "User-Agent": iosAppUA}, 401, rcOrigin, false},
		{"mobile app WebView, Android", "GET", map[string]string{"Origin": rcOrigin, "X-Forwarded-User": "alice", "User-Agent": androidAppUA}, 401, rcOrigin, false},
		{"mobile app WebView before 2023", "POST", map[string]string{"Origin": rcOrigin, "X-Forwarded-User": "alice", "User-Agent": "Mozilla/5.0 (Linux; Android 6.0.1; SM-G920V Build/MMB29K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.98 Mobile Safari/537.36"}, 401, rcOrigin, false},
		{"a browser whose user agent only contains the app's", "POST", map[string]string{"Origin": rcOrigin, "X-Forwarded-User": "alice", "User-Agent": iosAppUA + " Extra/1.0"}, 200, rcOrigin, true},
		{"the app's user agent in other case", "POST", map[string]string{"Origin": rcOrigin, "X-Forwarded-User": "alice", "User-Agent": strings.ToLower(androidAppUA)}, 200, rcOrigin, true},
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

// The API URL's answers carry their security headers, and the header
// values rcsso shares between answers (server.go, hv*) are never changed
// by one answer for the next: a preflight's extra Vary values stay its own.
func TestAPIURLSecurityHeaders(t *testing.T) {
	s, _, _ := newTestServer(t)
	check := func(w *httptest.ResponseRecorder, vary string) {
		t.Helper()
		h := w.Header()
		for k, want := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
			"Cache-Control":           "no-store",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("%s: %q, want %q", k, got, want)
			}
		}
		if got := strings.Join(h.Values("Vary"), ", "); got != vary {
			t.Errorf("Vary: %q, want %q", got, vary)
		}
	}
	ok := map[string]string{"Origin": rcOrigin, "X-Forwarded-User": "alice"}
	check(do(s, "POST", "/api/rocketchat/token", ok, ""), "Origin")
	check(do(s, "OPTIONS", "/api/rocketchat/token", map[string]string{"Origin": rcOrigin, "Access-Control-Request-Method": "POST"}, ""),
		"Origin, Access-Control-Request-Method, Access-Control-Request-Headers")
	w := do(s, "POST", "/api/rocketchat/token", ok, "")
	check(w, "Origin")
	w.Header().Add("Vary", "Cookie") // what a later writer of one answer may do
	check(do(s, "GET", "/api/rocketchat/token", ok, ""), "Origin")
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

// An identity header sent twice through the trusted proxy (the proxy added
// its own instead of replacing the client's) is a 400 with a JSON error,
// not a login as the first value, and mints nothing.
func TestDuplicateIdentityHeaderIs400(t *testing.T) {
	s, m, _ := newTestServer(t)
	r := httptest.NewRequest("GET", "/api/rocketchat/token", nil)
	r.RemoteAddr = "192.0.2.1:4000"
	r.Header.Set("Origin", rcOrigin)
	r.Header["X-Forwarded-User"] = []string{"mallory", "alice"}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "conflicting identity headers") || m.n.Load() != 0 {
		t.Fatalf("status %d body %s mints %d", w.Code, w.Body, m.n.Load())
	}
}

// countingSource recognises everyone as alice and counts the look-ups.
type countingSource struct{ n atomic.Int64 }

func (c *countingSource) Name() string { return "counting" }
func (c *countingSource) Identify(*http.Request) (identity.Identity, error) {
	c.n.Add(1)
	return identity.Identity{Subject: "counting:alice", Source: "counting", Username: "alice"}, nil
}

// A cross-site page cannot make rcsso provision or mint by loading the API
// URL as an image/script (no-cors GET: no Origin header) or by navigating
// to it (link, form, iframe): Fetch Metadata refuses those with 403 before
// the identity source is even asked. Real Rocket.Chat clients (cors-mode
// fetch/XHR), clients without Fetch Metadata and a visitor typing the URL
// still get their token; the CORS answers are unchanged.
func TestAPIURLFetchMetadata(t *testing.T) {
	s, m, _ := newTestServer(t)
	src := &countingSource{}
	s.o.Identity = identity.Chain{src}
	refused := []struct {
		name, method string
		hdr          map[string]string
	}{
		{"cross-site no-cors GET (img src)", "GET", map[string]string{"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "image"}},
		{"cross-site no-cors GET (script src)", "GET", map[string]string{"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "script"}},
		{"same-site no-cors GET", "GET", map[string]string{"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "same-site", "Sec-Fetch-Dest": "image"}},
		{"no-cors POST from Rocket.Chat's origin", "POST", map[string]string{"Origin": rcOrigin, "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "empty"}},
		{"cross-site navigation (link)", "GET", map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "document", "Sec-Fetch-User": "?1"}},
		{"cross-site navigation (iframe)", "GET", map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "iframe"}},
		{"cross-site navigation (old Chrome frame)", "GET", map[string]string{"Sec-Fetch-Mode": "nested-navigate", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "iframe"}},
		{"cross-site navigation from Rocket.Chat's origin (form post)", "POST", map[string]string{"Origin": rcOrigin, "Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "document"}},
	}
	for _, c := range refused {
		w := do(s, c.method, "/api/rocketchat/token", c.hdr, "")
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), `"error":"the API URL`) || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%s: status %d %s, want 403 with a JSON error", c.name, w.Code, w.Body)
		}
		if w.Header().Get("Access-Control-Allow-Origin") != "" || !strings.Contains(strings.Join(w.Header().Values("Vary"), ","), "Origin") {
			t.Errorf("%s: CORS headers %v", c.name, w.Header())
		}
	}
	if n := src.n.Load(); n != 0 || m.n.Load() != 0 {
		t.Fatalf("refused requests reached the identity source %d times and minted %d tokens", n, m.n.Load())
	}
	allowed := []struct {
		name, method string
		hdr          map[string]string
	}{
		{"Rocket.Chat fetch (cors)", "POST", map[string]string{"Origin": rcOrigin, "Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "empty"}},
		{"Rocket.Chat XHR (cors, same-site)", "GET", map[string]string{"Origin": rcOrigin, "Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-site", "Sec-Fetch-Dest": "empty"}},
		{"no Fetch Metadata (mobile app, curl)", "GET", nil},
		{"typed into the address bar", "GET", map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "none", "Sec-Fetch-Dest": "document"}},
		{"same-site navigation", "GET", map[string]string{"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "same-site", "Sec-Fetch-Dest": "document"}},
	}
	for _, c := range allowed {
		w := do(s, c.method, "/api/rocketchat/token", c.hdr, "")
		if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "loginToken") {
			t.Errorf("%s: status %d %s, want 200 with a token", c.name, w.Code, w.Body)
		}
		if o := c.hdr["Origin"]; o != "" && w.Header().Get("Access-Control-Allow-Origin") != o {
			t.Errorf("%s: ACAO %q", c.name, w.Header().Get("Access-Control-Allow-Origin"))
		}
	}
	if n := src.n.Load(); n != int64(len(allowed)) {
		t.Fatalf("identity source asked %d times for %d allowed requests", n, len(allowed))
	}
}

// Hostile /static/ paths: overlong UTF-8 dots, invalid UTF-8, encoded and
// double-encoded traversals, backslashes, NUL bytes and directories are all
// answered without a 5xx and without anything outside web.Static; real
// files still load.
func TestStaticHostilePaths(t *testing.T) {
	s, _, _ := newTestServer(t)
	for _, p := range []string{
		"/static/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
		"/static/%c0%ae%c0%ae%c0%af%c0%ae%c0%ae%c0%afgo.mod",
		"/static/%e0%80%ae%e0%80%ae/go.mod",
		"/static/%ff",
		"/static/%ff%fe/rcsso.css",
		"/static/..%2f..%2fgo.mod",
		"/static/..%252f..%252fgo.mod",
		"/static/%2e%2e/%2e%2e/go.mod",
		"/static/.%2e/server.go",
		"/static/..\\..\\go.mod",
		"/static/%5c..%5cgo.mod",
		"/static/rcsso.css%00.js",
		"/static/rcsso.css/",
		"/static/./rcsso.css",
		"/static//rcsso.css",
		"/static/",
		"/static/%2f",
		"/static/nonexistent.js",
		"/static/" + strings.Repeat("a/", 2000) + "x",
	} {
		w := do(s, "GET", p, nil, "")
		switch {
		case w.Code >= 500:
			t.Errorf("%s: %d %s", p, w.Code, w.Body)
		case w.Code == 200:
			t.Errorf("%s: 200 (%d bytes), want a refusal", p, w.Body.Len())
		case w.Code == 404 && !strings.Contains(w.Body.String(), `"not found"`):
			t.Errorf("%s: 404 not from the error table: %q", p, w.Body)
		}
	}
	for _, p := range []string{"/static/rcsso.css", "/static/login.js", "/static/embed.js"} {
		w := do(s, "GET", p, nil, "")
		if w.Code != 200 || w.Body.Len() == 0 || w.Header().Get("Cache-Control") != "public, max-age=300" {
			t.Errorf("%s: %d, %d bytes, Cache-Control %q", p, w.Code, w.Body.Len(), w.Header().Get("Cache-Control"))
		}
	}
}

// fakeRC is a Rocket.Chat that answers /api/info, the public settings and
// HEAD /, counting the calls.
func fakeRC(t *testing.T) (*rocketchat.Client, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/info":
			_, _ = io.WriteString(w, `{"success":true,"version":"7.4.1"}`)
		case "/api/v1/settings.public":
			_, _ = io.WriteString(w, `{"success":true,"settings":[{"_id":"Accounts_iframe_enabled","value":true},`+
				`{"_id":"Accounts_Iframe_api_url","value":"http://sso.example.test/api/rocketchat/token"},`+
				`{"_id":"Accounts_iframe_url","value":"http://sso.example.test/login"},{"_id":"Accounts_Iframe_api_method","value":"POST"}],`+
				`"count":4,"offset":0,"total":4}`)
		default:
			w.Header().Set("X-Frame-Options", "sameorigin")
		}
	}))
	t.Cleanup(ts.Close)
	rc, err := rocketchat.New(rocketchat.Options{BaseURL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	return rc, &n
}

// The SQLite file deleted while rcsso runs: /readyz says 503 and names the
// store (SQLite would go on writing the unlinked file, losing everything).
func TestReadyzNoticesDeletedStore(t *testing.T) {
	s, _, _ := diagServer(t, diagToken)
	path := filepath.Join(t.TempDir(), "rcsso.db")
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	s.o.Store = st
	s.o.RC, _ = fakeRC(t)
	w := do(s, "GET", "/readyz", nil, "")
	if w.Code != 200 {
		t.Fatalf("readyz before: %d %s", w.Code, w.Body)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	s.readyMu.Lock()
	s.readyAt = time.Time{} // skip the 2 s readiness cache
	s.readyMu.Unlock()
	w = do(s, "GET", "/readyz", map[string]string{"Authorization": "Bearer " + diagToken}, "")
	var body map[string]string
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(body["store"], "failing") || !strings.Contains(body["store"], "deleted") || body["rocketchat"] != "ok" {
		t.Fatalf("readyz after deleting the store file: %d %s", w.Code, w.Body)
	}
}

// sso is an interactive identity source (a provider with its own pages).
type sso struct{}

func (sso) Name() string { return "idp" }
func (sso) Identify(*http.Request) (identity.Identity, error) {
	return identity.Identity{}, identity.ErrNotLoggedIn
}
func (sso) LoginLabel() string    { return "Log in with Example ID" }
func (sso) Handler() http.Handler { return http.NotFoundHandler() }

// Inside the mobile app's WebView the IFrame URL opens no pop-ups (they are
// lost there): the provider's button takes the whole WebView to the provider
// and back to Rocket.Chat, and the new-window login is not offered. A
// browser keeps both.
func TestIframeURLInMobileApp(t *testing.T) {
	s, _, _ := newTestServer(t)
	s.o.Identity = append(identity.Chain{sso{}}, s.o.Identity...)
	toRC := `href="` + s.base + `/auth/idp/login?return_to=` + url.QueryEscape(rcOrigin+"/") + `"`
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Dest": "iframe"}
	cases := []struct {
		name, method string
		hdr          map[string]string
		body         string
		mobile       bool
	}{
		{"browser", "GET", map[string]string{"Sec-Fetch-Dest": "iframe"}, "", false},
		{"desktop browser with an iPhone in its user agent", "GET", map[string]string{"Sec-Fetch-Dest": "iframe", "User-Agent": iosAppUA + " Extra/1.0"}, "", false},
		{"iOS app", "GET", map[string]string{"Sec-Fetch-Dest": "iframe", "User-Agent": iosAppUA}, "", true},
		{"Android app", "GET", map[string]string{"Sec-Fetch-Dest": "iframe", "User-Agent": androidAppUA}, "", true},
		{"Android app, wrong password", "POST", map[string]string{"User-Agent": androidAppUA}, "username=alice&password=wrong", true},
		{"browser claiming client=mobile", "POST", nil, "username=alice&password=wrong&client=mobile", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hdr := c.hdr
			if c.method == "POST" {
				hdr = map[string]string{}
				for k, v := range form {
					hdr[k] = v
				}
				for k, v := range c.hdr {
					hdr[k] = v
				}
			}
			body := do(s, c.method, "/login", hdr, c.body).Body.String()
			if !strings.Contains(body, `id="login-idp"`) {
				t.Fatalf("no provider button: %s", body)
			}
			if got := strings.Contains(body, toRC) && strings.Contains(body, `target="_top"`); got != c.mobile {
				t.Fatalf("button goes top-level back to Rocket.Chat = %v, want %v: %s", got, c.mobile, body)
			}
			if got := strings.Contains(body, `id="login-window-box"`); got == c.mobile {
				t.Fatalf("new-window login offered = %v, want %v", got, !c.mobile)
			}
		})
	}
}

// Anyone may probe /readyz (load balancers, Kubernetes) and sees each part's
// state, not its reason or Rocket.Chat's version: those name internal
// addresses and versions with known holes. The operator's diagnostics
// token shows them; a wrong token is refused.
func TestReadyzReasonsOnlyForTheOperator(t *testing.T) {
	s, _, _ := diagServer(t, diagToken)
	s.o.RC, _ = fakeRC(t)
	s.o.Ready = func(context.Context) error {
		return errors.New("createToken refused at http://10.1.2.3:3000: error-not-allowed")
	}
	w := do(s, "GET", "/readyz", nil, "")
	var body map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusServiceUnavailable || body["minting"] != "failing" || body["store"] != "ok" || body["rocketchat"] != "ok" {
		t.Fatalf("anonymous readyz: %d %s", w.Code, w.Body)
	}
	for _, secret := range []string{"10.1.2.3", "error-not-allowed", "rocketchat_version", "createToken"} {
		if strings.Contains(w.Body.String(), secret) {
			t.Fatalf("an anonymous prober sees %q: %s", secret, w.Body)
		}
	}
	w = do(s, "GET", "/readyz", map[string]string{"Authorization": "Bearer " + diagToken}, "")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), "10.1.2.3") || !strings.Contains(w.Body.String(), "rocketchat_version") {
		t.Fatalf("operator readyz: %d %s", w.Code, w.Body)
	}
	for _, hdr := range []map[string]string{
		{"Authorization": "Bearer " + diagToken + "x"},
		{"Authorization": "Basic " + diagToken},
	} {
		if w := do(s, "GET", "/readyz", hdr, ""); w.Code != http.StatusForbidden || strings.Contains(w.Body.String(), "10.1.2.3") {
			t.Fatalf("readyz with %v: %d %s", hdr, w.Code, w.Body)
		}
	}
	if w := do(s, "GET", "/readyz?token="+diagToken, nil, ""); w.Code != http.StatusBadRequest {
		t.Fatalf("readyz with the token in the URL: %d %s", w.Code, w.Body)
	}
}

// A client that hangs up while /readyz runs its checks must not leave a
// failing answer (its own "context canceled") cached for every prober: an
// anonymous visitor could otherwise have load balancers take every
// instance out, two seconds at a time.
func TestReadyzHangUpDoesNotPoisonTheAnswer(t *testing.T) {
	s, _, _ := newTestServer(t)
	s.o.RC, _ = fakeRC(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	r := httptest.NewRequestWithContext(ctx, "GET", "/readyz", nil)
	s.ServeHTTP(httptest.NewRecorder(), r)
	if w := do(s, "GET", "/readyz", nil, ""); w.Code != 200 {
		t.Fatalf("readyz after another client hung up: %d %s", w.Code, w.Body)
	}
}
