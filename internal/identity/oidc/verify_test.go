package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"github.com/coreos/go-oidc/v3/oidc/oidctest"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/websession"
)

const testClientID = "rcsso-client"

var testNow = time.Unix(1_800_000_000, 0)

// testOP is a discovery + JWKS server (oidctest) whose keys can rotate.
type testOP struct {
	t         *testing.T
	srv       *httptest.Server
	ts        *oidctest.Server
	keys      map[string]*ecdsa.PrivateKey
	jwksFetch atomic.Int32
}

func newTestOP(t *testing.T, published ...string) *testOP {
	t.Helper()
	op := &testOP{t: t, ts: &oidctest.Server{Algorithms: []string{gooidc.ES256}}, keys: map[string]*ecdsa.PrivateKey{}}
	op.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keys" {
			op.jwksFetch.Add(1)
		}
		op.ts.ServeHTTP(w, r)
	}))
	t.Cleanup(op.srv.Close)
	op.ts.SetIssuer(op.srv.URL)
	op.publish(published...)
	return op
}

func (op *testOP) key(kid string) *ecdsa.PrivateKey {
	if k, ok := op.keys[kid]; ok {
		return k
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		op.t.Fatal(err)
	}
	op.keys[kid] = k
	return k
}

// publish replaces the served JWKS with the given key ids.
func (op *testOP) publish(kids ...string) {
	var pubs []oidctest.PublicKey
	for _, kid := range kids {
		pubs = append(pubs, oidctest.PublicKey{PublicKey: op.key(kid).Public(), KeyID: kid, Algorithm: gooidc.ES256})
	}
	op.ts.PublicKeys = pubs
}

func (op *testOP) sign(kid string, claims map[string]any) string {
	b, err := json.Marshal(claims)
	if err != nil {
		op.t.Fatal(err)
	}
	return oidctest.SignIDToken(op.key(kid), kid, gooidc.ES256, string(b))
}

func testKey() []byte { return []byte("0123456789abcdef0123456789abcdef") }

func newTestSessions(now func() time.Time) *websession.Manager {
	return websession.New(memory.New(), websession.Options{CookieName: "rcsso_session", TTL: time.Hour, SameSite: http.SameSiteLaxMode, Now: now})
}

func newTestSource(t *testing.T, issuer string, mod func(*Options)) *Source {
	t.Helper()
	now := func() time.Time { return testNow }
	cfg := Options{
		Name:         "idp",
		Issuer:       issuer,
		ClientID:     testClientID,
		ClientSecret: "secret",
		RedirectURL:  "https://rcsso.example/auth/idp/callback",
		Sessions:     newTestSessions(now),
		StateKey:     testKey(),
		SafeReturnTo: func(s string) string {
			if strings.HasPrefix(s, "https://rcsso.example/") {
				return s
			}
			return ""
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    now,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func idClaims(iss string) map[string]any {
	return map[string]any{
		"iss": iss, "aud": testClientID, "sub": "alice", "nonce": "n1",
		"iat": testNow.Unix(), "exp": testNow.Add(5 * time.Minute).Unix(),
	}
}

func with(c map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func TestVerifyIDToken(t *testing.T) {
	op := newTestOP(t, "k1")
	s := newTestSource(t, op.srv.URL, nil)
	base := idClaims(op.srv.URL)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		kid    string
		claims map[string]any
		ok     bool
		is     error
	}{
		{"valid", "k1", base, true, nil},
		{"wrong aud", "k1", with(base, "aud", "other-client"), false, nil},
		{"wrong iss", "k1", with(base, "iss", "https://evil.example"), false, nil},
		{"expired", "k1", with(base, "exp", testNow.Add(-time.Second).Unix()), false, nil},
		{"nonce mismatch", "k1", with(base, "nonce", "n2"), false, errNonce},
		{"nonce missing", "k1", with(base, "nonce", nil), false, errNonce},
		{"no sub", "k1", with(base, "sub", nil), false, nil},
		{"unknown key", "k9", base, false, nil},
		{"multi aud without azp", "k1", with(base, "aud", []string{testClientID, "other"}), false, nil},
		{"multi aud with azp", "k1", with(base, "aud", []string{testClientID, "other"}, "azp", testClientID), true, nil},
		{"foreign azp", "k1", with(base, "azp", "other"), false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, sub, err := s.verifyIDToken(ctx, op.sign(tc.kid, tc.claims), "n1")
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			if tc.ok && (sub != "alice" || cl["sub"] != "alice") {
				t.Fatalf("sub = %q, claims %v", sub, cl)
			}
		})
	}
}

// handlerTransport serves requests in memory: no network, no goroutines.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, r)
	return w.Result(), nil
}

// TestKeyRotation: the source verifies with the provider's RemoteKeySet,
// which refetches the JWKS when a token names a kid missing from its cache,
// and only then. go-oidc stores a fetched key set from a background
// goroutine, so the test runs in a synctest bubble with an in-memory OP and
// waits for that goroutine instead of sleeping.
func TestKeyRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		op := &testOP{t: t, ts: &oidctest.Server{Algorithms: []string{gooidc.ES256}}, keys: map[string]*ecdsa.PrivateKey{}}
		const issuer = "https://op.example"
		op.ts.SetIssuer(issuer)
		op.publish("k1")
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/keys" {
				op.jwksFetch.Add(1)
			}
			op.ts.ServeHTTP(w, r)
		})
		s := newTestSource(t, issuer, func(c *Options) { c.HTTPClient = &http.Client{Transport: handlerTransport{h}} })
		step := func(kid string, wantOK bool, wantFetches int32) {
			t.Helper()
			_, _, err := s.verifyIDToken(context.Background(), op.sign(kid, idClaims(issuer)), "n1")
			if wantOK != (err == nil) {
				t.Fatalf("token signed with %s: err = %v, want ok=%v", kid, err, wantOK)
			}
			synctest.Wait() // go-oidc's fetch goroutine has stored the keys
			if n := op.jwksFetch.Load(); n != wantFetches {
				t.Fatalf("after %s: JWKS fetched %d times, want %d", kid, n, wantFetches)
			}
		}
		step("k1", true, 1)
		step("k1", true, 1) // cached
		op.publish("k2")    // the OP rotates: k1 retired, k2 current
		step("k2", true, 2) // unknown kid → refetch
		step("k2", true, 2) // cached
		step("k1", false, 3)
		step("k3", false, 4)
	})
}

func logoutClaims(iss, jti string) map[string]any {
	return map[string]any{
		"iss": iss, "aud": testClientID, "sub": "alice", "jti": jti,
		"iat": testNow.Unix(), "exp": testNow.Add(2 * time.Minute).Unix(),
		"events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
	}
}

func TestVerifyLogoutToken(t *testing.T) {
	op := newTestOP(t, "k1")
	s := newTestSource(t, op.srv.URL, nil)
	ctx := context.Background()
	var n int
	base := func() map[string]any { n++; return logoutClaims(op.srv.URL, "jti-"+string(rune('a'+n))) }
	for _, tc := range []struct {
		name   string
		kid    string
		claims map[string]any
		is     error
	}{
		{"wrong aud", "k1", with(base(), "aud", "other-client"), nil},
		{"wrong iss", "k1", with(base(), "iss", "https://evil.example"), nil},
		{"expired", "k1", with(base(), "exp", testNow.Add(-time.Second).Unix()), nil},
		{"no exp", "k1", with(base(), "exp", nil), nil},
		{"missing events", "k1", with(base(), "events", nil), nil},
		{"wrong event", "k1", with(base(), "events", map[string]any{"urn:other": map[string]any{}}), nil},
		{"event not an object", "k1", with(base(), "events", map[string]any{BackchannelLogoutEvent: "yes"}), nil},
		{"with nonce", "k1", with(base(), "nonce", "n1"), nil},
		{"no jti", "k1", with(base(), "jti", nil), nil},
		{"no iat", "k1", with(base(), "iat", nil), nil},
		{"iat in the future", "k1", with(base(), "iat", testNow.Add(time.Hour).Unix()), nil},
		{"unknown key", "k9", base(), nil},
		{"sid only", "k1", with(base(), "sub", nil, "sid", "s-1"), errSIDOnly},
		{"neither sub nor sid", "k1", with(base(), "sub", nil), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := s.verifyLogout(ctx, op.sign(tc.kid, tc.claims))
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
		})
	}
	t.Run("valid then replayed", func(t *testing.T) {
		tok := op.sign("k1", with(logoutClaims(op.srv.URL, "once"), "sid", "s-1"))
		sub, jti, err := s.verifyLogout(ctx, tok)
		if err != nil || sub != "alice" || jti != "once" {
			t.Fatalf("got %q %q %v", sub, jti, err)
		}
		if _, _, err := s.verifyLogout(ctx, tok); !errors.Is(err, errReplay) {
			t.Fatalf("replay: err = %v, want errReplay", err)
		}
		// A different token reusing the jti is a replay too.
		other := op.sign("k1", with(logoutClaims(op.srv.URL, "once"), "sub", "bob"))
		if _, _, err := s.verifyLogout(ctx, other); !errors.Is(err, errReplay) {
			t.Fatalf("jti reuse: err = %v, want errReplay", err)
		}
	})
}

func TestBackchannelLogoutHTTP(t *testing.T) {
	op := newTestOP(t, "k1")
	var hooked []string
	s := newTestSource(t, op.srv.URL, func(c *Options) {
		c.OnLogout = func(_ context.Context, sub string) error { hooked = append(hooked, sub); return nil }
	})
	h := s.Handler()
	post := func(form url.Values) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/backchannel-logout", strings.NewReader(form.Encode()))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	wantError := func(w *httptest.ResponseRecorder, contains string) {
		t.Helper()
		var body map[string]string
		if w.Code != http.StatusBadRequest || json.Unmarshal(w.Body.Bytes(), &body) != nil || body["error"] != "invalid_request" {
			t.Fatalf("got %d %s, want 400 invalid_request", w.Code, w.Body)
		}
		if !strings.Contains(body["error_description"], contains) {
			t.Fatalf("description %q lacks %q", body["error_description"], contains)
		}
	}
	wantError(post(url.Values{}), "missing")
	wantError(post(url.Values{"logout_token": {op.sign("k1", with(logoutClaims(op.srv.URL, "j0"), "nonce", "x"))}}), "invalid")
	wantError(post(url.Values{"logout_token": {op.sign("k1", with(logoutClaims(op.srv.URL, "j1"), "sub", nil, "sid", "s"))}}), "sid")
	if len(hooked) != 0 {
		t.Fatalf("OnLogout called for invalid tokens: %v", hooked)
	}

	tok := op.sign("k1", logoutClaims(op.srv.URL, "j2"))
	w := post(url.Values{"logout_token": {tok}})
	if w.Code != http.StatusOK || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("got %d, Cache-Control %q", w.Code, w.Header().Get("Cache-Control"))
	}
	if len(hooked) != 1 || hooked[0] != "idp:alice" {
		t.Fatalf("OnLogout calls = %v", hooked)
	}
	wantError(post(url.Values{"logout_token": {tok}}), "invalid")

	r := httptest.NewRequest(http.MethodGet, "/backchannel-logout?logout_token="+tok, nil)
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", w.Code)
	}
}

// TestBackchannelLogoutRetry: when ending the sessions fails, the OP gets
// 400 and may retry the same token.
func TestBackchannelLogoutRetry(t *testing.T) {
	op := newTestOP(t, "k1")
	fail := true
	s := newTestSource(t, op.srv.URL, func(c *Options) {
		c.OnLogout = func(context.Context, string) error {
			if fail {
				return errors.New("rocket.chat down")
			}
			return nil
		}
	})
	form := url.Values{"logout_token": {op.sign("k1", logoutClaims(op.srv.URL, "j"))}}.Encode()
	for i, want := range []int{http.StatusBadRequest, http.StatusOK} {
		r := httptest.NewRequest(http.MethodPost, "/backchannel-logout", strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != want {
			t.Fatalf("attempt %d: %d %s, want %d", i, w.Code, w.Body, want)
		}
		fail = false
	}
}

func TestLoginRedirectAndCookie(t *testing.T) {
	op := newTestOP(t, "k1")
	s := newTestSource(t, op.srv.URL, func(c *Options) { c.SecureCookies = true })
	for _, path := range []string{"/login", "login"} {
		r := httptest.NewRequest(http.MethodGet, "/x", nil)
		r.URL.Path = path
		r.URL.RawQuery = "return_to=" + url.QueryEscape("https://rcsso.example/popup?x=1")
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, r)
		if w.Code != http.StatusFound {
			t.Fatalf("%s: status %d", path, w.Code)
		}
		loc, err := url.Parse(w.Header().Get("Location"))
		if err != nil || !strings.HasPrefix(loc.String(), op.srv.URL+"/auth?") {
			t.Fatalf("Location %q", loc)
		}
		q := loc.Query()
		for k, want := range map[string]string{
			"response_type": "code", "client_id": testClientID, "redirect_uri": "https://rcsso.example/auth/idp/callback",
			"scope": "openid profile email", "code_challenge_method": "S256",
		} {
			if q.Get(k) != want {
				t.Errorf("%s = %q, want %q", k, q.Get(k), want)
			}
		}
		if strings.Contains(loc.String(), "popup") {
			t.Error("return_to leaked to the provider")
		}
		cookies := w.Result().Cookies()
		if len(cookies) != 1 {
			t.Fatalf("cookies: %v", cookies)
		}
		c := cookies[0]
		if c.Name != "rcsso_oidc_idp" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteLaxMode || c.Path != "/auth/idp/" || c.MaxAge != 600 {
			t.Fatalf("cookie attributes: %+v", c)
		}
		st, err := s.codec.decode(c.Value, testNow)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(st.Verifier))
		if st.State != q.Get("state") || st.Nonce != q.Get("nonce") || len(st.State) < 22 || len(st.Nonce) < 22 ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != q.Get("code_challenge") || st.ReturnTo != "https://rcsso.example/popup?x=1" {
			t.Fatalf("state %+v does not match the authorization request %v", st, q)
		}
		if strings.Contains(c.Value, st.State) || strings.Contains(c.Value, st.Verifier) {
			t.Fatal("cookie is not encrypted")
		}
	}
	for _, m := range []string{http.MethodHead, http.MethodPost} {
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, httptest.NewRequest(m, "/callback?code=x&state=y", nil))
		if w.Code != http.StatusMethodNotAllowed || len(w.Result().Cookies()) != 0 {
			t.Fatalf("%s /callback: %d", m, w.Code)
		}
	}
	// A return_to refused by SafeReturnTo is dropped.
	r := httptest.NewRequest(http.MethodGet, "/login?return_to="+url.QueryEscape("https://evil.example/"), nil)
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	st, err := s.codec.decode(w.Result().Cookies()[0].Value, testNow)
	if err != nil || st.ReturnTo != "" {
		t.Fatalf("return_to kept: %+v %v", st, err)
	}
}

func TestNewErrors(t *testing.T) {
	op := newTestOP(t, "k1")
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	for _, tc := range []struct {
		name string
		mod  func(*Options)
		want string
	}{
		{"bad name", func(c *Options) { c.Name = "a:b" }, "name"},
		{"short key", func(c *Options) { c.StateKey = []byte("short") }, "32"},
		{"no client", func(c *Options) { c.ClientID = "" }, "client id"},
		{"mapping subject", func(c *Options) { c.Mapping.Subject = "email" }, "sub"},
		{"redirect", func(c *Options) { c.RedirectURL = "/auth/idp/callback" }, "redirect URL"},
		{"unreachable", func(c *Options) { c.Issuer = dead.URL }, dead.URL + "/.well-known/openid-configuration"},
		{"issuer mismatch", func(c *Options) { c.Issuer = op.srv.URL + "/" }, "discovery"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Options{Name: "idp", Issuer: op.srv.URL, ClientID: testClientID, RedirectURL: "https://rcsso.example/auth/idp/callback",
				Sessions: newTestSessions(time.Now), StateKey: testKey()}
			tc.mod(&cfg)
			_, err := New(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestMergeClaims(t *testing.T) {
	id := map[string]any{"sub": "alice", "iss": "https://op.example", "aud": testClientID, "name": "A", "email": "a@example.com"}
	mergeClaims(id, map[string]any{"sub": "mallory", "iss": "https://evil.example", "aud": "x", "nonce": "n", "name": "Alice", "picture": "https://img.example/a.png"})
	want := map[string]any{"sub": "alice", "iss": "https://op.example", "aud": testClientID, "name": "Alice", "email": "a@example.com", "picture": "https://img.example/a.png"}
	if !reflect.DeepEqual(id, want) {
		t.Fatalf("merged %v, want %v", id, want)
	}
}

func TestIdentifyOtherSourcesSession(t *testing.T) {
	op := newTestOP(t, "k1")
	s := newTestSource(t, op.srv.URL, nil)
	for _, tc := range []struct {
		source string
		ok     bool
	}{{"local", false}, {"idp", true}} {
		w := httptest.NewRecorder()
		if err := s.cfg.Sessions.Start(context.Background(), w, identity.Identity{Subject: tc.source + ":alice", Source: tc.source, Username: "alice"}); err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, c := range w.Result().Cookies() {
			r.AddCookie(c)
		}
		id, err := s.Identify(r)
		if tc.ok != (err == nil) || (!tc.ok && !errors.Is(err, identity.ErrNotLoggedIn)) || (tc.ok && id.Subject != "idp:alice") {
			t.Fatalf("session of %q: %+v, %v", tc.source, id, err)
		}
	}
	if _, err := s.Identify(httptest.NewRequest(http.MethodGet, "/", nil)); !errors.Is(err, identity.ErrNotLoggedIn) {
		t.Fatalf("no cookie: %v", err)
	}
}
