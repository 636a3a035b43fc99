package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/rcsso/rcsso/internal/identity"
)

// testUser is the OP's user: the ID token carries the core claims, the
// UserInfo response a different display name and the picture.
type testUser struct {
	sub, userinfoSub string
	unverified       bool // the OP does not vouch for the e-mail
}

func (u testUser) ID() string { return u.sub }

func (u testUser) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]any{
		"sub": u.userinfoSub, "name": "Alice (UserInfo)", "picture": "https://img.example/alice.png",
		"email": "alice@example.com", "iss": "https://evil.example",
	})
}

func (u testUser) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	return &struct {
		*mockoidc.IDTokenClaims
		Email             string `json:"email"`
		EmailVerified     bool   `json:"email_verified"`
		PreferredUsername string `json:"preferred_username"`
		Name              string `json:"name"`
	}{base, "alice@example.com", !u.unverified, "alice", "Alice (ID token)"}, nil
}

var alice = testUser{sub: "u-42", userinfoSub: "u-42"}

// rig is rcsso (this source behind an httptest server) plus mockoidc.
type rig struct {
	t      *testing.T
	m      *mockoidc.MockOIDC
	src    *Source
	rc     *httptest.Server
	jar    http.CookieJar
	client *http.Client // a browser: cookie jar, follows redirects
	skew   atomic.Int64 // added to rcsso's clock

	mu        sync.Mutex
	loggedOut []string
	authorize url.Values // last authorization request
	tokenForm url.Values // last token request
}

type rigOptions struct {
	middleware func(http.Handler) http.Handler
	endSession bool
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Keypair.KeyID(); err != nil { // compute the lazy kid before serving
		t.Fatal(err)
	}
	rg := &rig{t: t, m: m}
	_ = m.AddMiddleware(rg.record)
	if o.endSession {
		_ = m.AddMiddleware(addEndSession)
	}
	if o.middleware != nil {
		_ = m.AddMiddleware(o.middleware)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })

	var h http.Handler = http.NotFoundHandler()
	rg.rc = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(rg.rc.Close)
	now := func() time.Time { return time.Now().Add(time.Duration(rg.skew.Load())) }
	rg.src, err = New(context.Background(), Options{
		Name:         "idp",
		Issuer:       m.Issuer(),
		ClientID:     m.ClientID,
		ClientSecret: m.ClientSecret,
		RedirectURL:  rg.rc.URL + "/auth/idp/callback",
		Sessions:     newTestSessions(now),
		StateKey:     testKey(),
		SafeReturnTo: func(s string) string {
			if strings.HasPrefix(s, rg.rc.URL+"/") {
				return s
			}
			return ""
		},
		OnLogout: func(_ context.Context, subject string) error {
			rg.mu.Lock()
			defer rg.mu.Unlock()
			rg.loggedOut = append(rg.loggedOut, subject)
			return nil
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    now,
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/auth/idp/", http.StripPrefix("/auth/idp", rg.src.Handler()))
	mux.HandleFunc("/popup", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "popup page") })
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		id, err := rg.src.Identify(r)
		switch {
		case errors.Is(err, identity.ErrNotLoggedIn):
			http.Error(w, "not logged in", http.StatusUnauthorized)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			_ = json.NewEncoder(w).Encode(id)
		}
	})
	h = mux
	rg.jar, _ = cookiejar.New(nil)
	rg.client = &http.Client{Jar: rg.jar}
	return rg
}

// record keeps the last authorization and token requests' parameters.
func (rg *rig) record(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case mockoidc.AuthorizationEndpoint:
			rg.mu.Lock()
			rg.authorize = r.URL.Query()
			rg.mu.Unlock()
		case mockoidc.TokenEndpoint:
			_ = r.ParseForm()
			rg.mu.Lock()
			rg.tokenForm = r.PostForm
			rg.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// addEndSession advertises an end_session_endpoint in discovery.
func addEndSession(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != mockoidc.DiscoveryEndpoint {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var doc map[string]any
		_ = json.Unmarshal(rec.Body.Bytes(), &doc)
		doc["end_session_endpoint"] = "http://" + r.Host + "/oidc/logout?ui=compact"
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
}

func (rg *rig) get(c *http.Client, u string) (*http.Response, string) {
	rg.t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		rg.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (rg *rig) loginURL(returnTo string) string {
	return rg.rc.URL + "/auth/idp/login?return_to=" + url.QueryEscape(returnTo)
}

// callbackURL runs login up to the OP's redirect back to rcsso and returns
// that callback URL (the browser's state cookie is in the jar). The OP
// logs alice in.
func (rg *rig) callbackURL(returnTo string) string {
	rg.t.Helper()
	rg.m.QueueUser(alice)
	c := &http.Client{Jar: rg.jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == "/auth/idp/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, _ := rg.get(c, rg.loginURL(returnTo))
	if resp.StatusCode != http.StatusFound {
		rg.t.Fatalf("OP answered %d, want a redirect to the callback", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// whoami returns the identity rcsso sees, or nil when not logged in.
func (rg *rig) whoami() *identity.Identity {
	rg.t.Helper()
	resp, body := rg.get(rg.client, rg.rc.URL+"/whoami")
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return nil
	case http.StatusOK:
		var id identity.Identity
		if err := json.Unmarshal([]byte(body), &id); err != nil {
			rg.t.Fatal(err)
		}
		return &id
	}
	rg.t.Fatalf("whoami: %d %s", resp.StatusCode, body)
	return nil
}

func (rg *rig) stateCookie() string {
	u, _ := url.Parse(rg.rc.URL + "/auth/idp/callback")
	for _, c := range rg.jar.Cookies(u) {
		if c.Name == "rcsso_oidc_idp" {
			return c.Value
		}
	}
	return ""
}

func (rg *rig) logoutToken(sub, jti string) string {
	tok, err := rg.m.Keypair.SignJWT(jwt.MapClaims{
		"iss": rg.m.Issuer(), "aud": rg.m.ClientID, "sub": sub, "jti": jti,
		"iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Minute).Unix(),
		"events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
	})
	if err != nil {
		rg.t.Fatal(err)
	}
	return tok
}

func (rg *rig) loggedOutSubjects() []string {
	rg.mu.Lock()
	defer rg.mu.Unlock()
	return append([]string(nil), rg.loggedOut...)
}

func wantPage(t *testing.T, resp *http.Response, body string, status int, text string) {
	t.Helper()
	if resp.StatusCode != status || !strings.Contains(body, text) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("got %d %q (%s), want %d with %q", resp.StatusCode, body, resp.Header.Get("Content-Type"), status, text)
	}
}

func TestFlowLoginAndBackchannelLogout(t *testing.T) {
	rg := newRig(t, rigOptions{})
	rg.m.QueueUser(alice)

	resp, body := rg.get(rg.client, rg.loginURL(rg.rc.URL+"/popup"))
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != rg.rc.URL+"/popup" || body != "popup page" {
		t.Fatalf("login ended at %s with %d %q", resp.Request.URL, resp.StatusCode, body)
	}
	if rg.stateCookie() != "" {
		t.Error("state cookie not cleared")
	}
	rg.mu.Lock()
	az, tf := rg.authorize, rg.tokenForm
	rg.mu.Unlock()
	if az.Get("code_challenge_method") != "S256" || az.Get("code_challenge") == "" || az.Get("nonce") == "" || tf.Get("code_verifier") == "" {
		t.Fatalf("PKCE/nonce missing: authorize %v, token %v", az, tf)
	}

	id := rg.whoami()
	if id != nil {
		if id.AuthTime.IsZero() {
			t.Error("AuthTime not set from the session")
		}
		id.AuthTime = time.Time{}
	}
	want := identity.Identity{Subject: "idp:u-42", Source: "idp", Username: "alice", Name: "Alice (UserInfo)", Email: "alice@example.com", EmailVerified: true, AvatarURL: "https://img.example/alice.png"}
	if id == nil || !reflect.DeepEqual(*id, want) {
		t.Fatalf("Identify = %+v, want %+v", id, want)
	}

	form := url.Values{"logout_token": {rg.logoutToken("u-42", "jti-1")}}
	post := func() *http.Response {
		resp, err := http.PostForm(rg.rc.URL+"/auth/idp/backchannel-logout", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post(); r.StatusCode != http.StatusOK || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("back-channel logout: %d, Cache-Control %q", r.StatusCode, r.Header.Get("Cache-Control"))
	}
	if id := rg.whoami(); id != nil {
		t.Fatalf("still logged in after back-channel logout: %+v", id)
	}
	if got := rg.loggedOutSubjects(); len(got) != 1 || got[0] != "idp:u-42" {
		t.Fatalf("OnLogout calls = %v", got)
	}
	if r := post(); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed logout token: %d", r.StatusCode)
	}
	if got := rg.loggedOutSubjects(); len(got) != 1 {
		t.Fatalf("OnLogout called on replay: %v", got)
	}
}

func TestFlowReturnToFiltered(t *testing.T) {
	rg := newRig(t, rigOptions{})
	rg.m.QueueUser(alice)
	resp, body := rg.get(rg.client, rg.loginURL("https://evil.example/"))
	if resp.Request.URL.Path != "/auth/idp/callback" {
		t.Fatalf("redirected to %s", resp.Request.URL)
	}
	wantPage(t, resp, body, http.StatusOK, "You are logged in")
	if rg.whoami() == nil {
		t.Fatal("no session")
	}
}

func TestFlowUnverifiedEmailDropped(t *testing.T) {
	rg := newRig(t, rigOptions{})
	rg.m.QueueUser(testUser{sub: "u-42", userinfoSub: "u-42", unverified: true})
	if resp, _ := rg.get(rg.client, rg.loginURL(rg.rc.URL+"/popup")); resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	if id := rg.whoami(); id == nil || id.Email != "" || id.EmailVerified || id.Name != "Alice (UserInfo)" {
		t.Fatalf("Identify = %+v, want no e-mail", id)
	}
}

func TestFlowTamperedState(t *testing.T) {
	rg := newRig(t, rigOptions{})
	cb, _ := url.Parse(rg.callbackURL(rg.rc.URL + "/popup"))
	q := cb.Query()
	q.Set("state", q.Get("state")+"x")
	cb.RawQuery = q.Encode()
	resp, body := rg.get(rg.client, cb.String())
	wantPage(t, resp, body, http.StatusBadRequest, "does not belong")
	if rg.whoami() != nil {
		t.Fatal("session started")
	}
}

func TestFlowMissingStateCookie(t *testing.T) {
	rg := newRig(t, rigOptions{})
	cb := rg.callbackURL(rg.rc.URL + "/popup")
	other, _ := cookiejar.New(nil) // another browser, or cookies blocked
	resp, body := rg.get(&http.Client{Jar: other}, cb)
	wantPage(t, resp, body, http.StatusBadRequest, "not started in this browser")
	if rg.whoami() != nil {
		t.Fatal("session started")
	}
}

func TestFlowExpiredStateCookie(t *testing.T) {
	rg := newRig(t, rigOptions{})
	cb := rg.callbackURL(rg.rc.URL + "/popup")
	rg.skew.Store(int64(StateTTL + time.Minute))
	resp, body := rg.get(rg.client, cb)
	wantPage(t, resp, body, http.StatusBadRequest, "took too long")
	if rg.whoami() != nil {
		t.Fatal("session started")
	}
}

func TestFlowReplayedStateCookie(t *testing.T) {
	rg := newRig(t, rigOptions{})
	cb := rg.callbackURL(rg.rc.URL + "/popup")
	saved := rg.stateCookie()
	if saved == "" {
		t.Fatal("no state cookie")
	}
	if resp, _ := rg.get(rg.client, cb); resp.Request.URL.Path != "/popup" {
		t.Fatalf("first callback ended at %s", resp.Request.URL)
	}
	// An attacker replays the captured cookie and callback in a fresh browser.
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(rg.rc.URL + "/auth/idp/")
	jar.SetCookies(u, []*http.Cookie{{Name: "rcsso_oidc_idp", Value: saved, Path: "/auth/idp/"}})
	resp, body := rg.get(&http.Client{Jar: jar}, cb)
	wantPage(t, resp, body, http.StatusBadRequest, "already used")
	for _, c := range jar.Cookies(u) {
		if c.Name == "rcsso_session" {
			t.Fatal("session started")
		}
	}
}

func TestFlowAccessDenied(t *testing.T) {
	deny := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != mockoidc.AuthorizationEndpoint {
				next.ServeHTTP(w, r)
				return
			}
			q := r.URL.Query()
			http.Redirect(w, r, q.Get("redirect_uri")+"?error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
		})
	}
	rg := newRig(t, rigOptions{middleware: deny})
	resp, body := rg.get(rg.client, rg.loginURL(rg.rc.URL+"/popup"))
	wantPage(t, resp, body, http.StatusBadRequest, "access_denied")
	if strings.Contains(body, "<b>") {
		t.Error("provider text rendered as HTML")
	}
	if rg.whoami() != nil {
		t.Fatal("session started")
	}
	if rg.stateCookie() != "" {
		t.Error("state cookie not cleared")
	}
}

func TestFlowNonceMismatch(t *testing.T) {
	swap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == mockoidc.AuthorizationEndpoint {
				q := r.URL.Query()
				q.Set("nonce", "attacker-nonce")
				r.URL.RawQuery = q.Encode()
			}
			next.ServeHTTP(w, r)
		})
	}
	rg := newRig(t, rigOptions{middleware: swap})
	rg.m.QueueUser(alice)
	resp, body := rg.get(rg.client, rg.loginURL(rg.rc.URL+"/popup"))
	wantPage(t, resp, body, http.StatusBadRequest, "does not belong")
	if rg.whoami() != nil {
		t.Fatal("session started")
	}
}

func TestFlowTokenExchangeFailure(t *testing.T) {
	rg := newRig(t, rigOptions{})
	cb := rg.callbackURL(rg.rc.URL + "/popup")
	// Two errors: oauth2 auto-detects the client authentication style and
	// retries a failed first attempt with the other style.
	for range 2 {
		rg.m.QueueError(&mockoidc.ServerError{Code: http.StatusBadRequest, Error: mockoidc.InvalidGrant, Description: "code expired"})
	}
	resp, body := rg.get(rg.client, cb)
	wantPage(t, resp, body, http.StatusBadGateway, "could not complete")
	if rg.whoami() != nil {
		t.Fatal("session started")
	}
}

func TestFlowUserInfoSubjectMismatch(t *testing.T) {
	rg := newRig(t, rigOptions{})
	rg.m.QueueUser(testUser{sub: "u-42", userinfoSub: "u-666"})
	resp, body := rg.get(rg.client, rg.loginURL(rg.rc.URL+"/popup"))
	wantPage(t, resp, body, http.StatusBadGateway, "profile")
	if rg.whoami() != nil {
		t.Fatal("session started")
	}
}

func TestFlowRPInitiatedLogout(t *testing.T) {
	noFollow := func(jar http.CookieJar) *http.Client {
		return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	for _, tc := range []struct{ endSession, relative bool }{{true, false}, {true, true}, {false, false}, {false, true}} {
		rg := newRig(t, rigOptions{endSession: tc.endSession})
		if tc.relative { // SafeReturnTo may answer with a relative URL
			rg.src.cfg.SafeReturnTo = func(s string) string { return strings.TrimPrefix(s, rg.rc.URL) }
		}
		rg.m.QueueUser(alice)
		if resp, _ := rg.get(rg.client, rg.loginURL(rg.rc.URL+"/popup")); resp.StatusCode != http.StatusOK || rg.whoami() == nil {
			t.Fatalf("%+v: login failed", tc)
		}
		resp, _ := rg.get(noFollow(rg.jar), rg.rc.URL+"/auth/idp/logout?return_to="+url.QueryEscape(rg.rc.URL+"/popup"))
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc == nil {
			t.Fatalf("%+v: %d", tc, resp.StatusCode)
		}
		if tc.endSession {
			q := loc.Query()
			if loc.Path != "/oidc/logout" || q.Get("ui") != "compact" || q.Get("client_id") != rg.m.ClientID || q.Get("post_logout_redirect_uri") != rg.rc.URL+"/popup" {
				t.Fatalf("%+v: end-session redirect %s", tc, loc)
			}
		} else if want := map[bool]string{false: rg.rc.URL + "/popup", true: "/popup"}[tc.relative]; loc.String() != want {
			t.Fatalf("%+v: redirect %s, want %s", tc, loc, want)
		}
		if rg.whoami() != nil {
			t.Fatalf("%+v: still logged in", tc)
		}
		if got := rg.loggedOutSubjects(); len(got) != 1 || got[0] != "idp:u-42" {
			t.Fatalf("%+v: OnLogout calls = %v", tc, got)
		}
	}
}
