package oauthprovider

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/sealer"
)

const (
	testClient   = "rocketchat"
	testSecret   = "s3cret/with+special&chars"
	testRC       = "https://chat.example.test"
	testCallback = testRC + "/_oauth/rcsso"
	testBase     = "https://sso.example.test/oauth"
	testLogin    = "https://sso.example.test/login"
)

var alice = identity.Identity{Subject: "local:alice", Source: "local", Username: "Alice", Name: "Alice Example",
	Email: "alice@example.test", EmailVerified: true}

// cookieSource recognises the visitor from the cookie "who"; "down" makes it
// unavailable.
type cookieSource struct{ people map[string]identity.Identity }

func (cookieSource) Name() string { return "test" }

func (s cookieSource) Identify(r *http.Request) (identity.Identity, error) {
	c, err := r.Cookie("who")
	if err != nil {
		return identity.Identity{}, identity.ErrNotLoggedIn
	}
	if c.Value == "down" {
		return identity.Identity{}, identity.ErrSourceUnavailable
	}
	id, ok := s.people[c.Value]
	if !ok {
		return identity.Identity{}, identity.ErrNotLoggedIn
	}
	return id, nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	t     *testing.T
	p     *Provider
	srv   *httptest.Server
	clock *clock
}

func newFixture(t *testing.T, mod ...func(*Config)) *fixture {
	t.Helper()
	key := sha256.Sum256([]byte("test key"))
	s, err := sealer.New(key[:])
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)}
	cfg := Config{
		ServiceName: "rcsso", ClientID: testClient, ClientSecret: testSecret, RocketChatURL: testRC,
		BaseURL: testBase, LoginURL: testLogin, Sealer: s, Now: clk.Now,
		Identity: identity.Chain{cookieSource{people: map[string]identity.Identity{"alice": alice}}},
	}
	for _, m := range mod {
		m(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/oauth/", p.Handler()))
	t.Cleanup(srv.Close)
	return &fixture{t: t, p: p, srv: srv, clock: clk}
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

type answer struct {
	status int
	header http.Header
	body   string
	json   map[string]any
}

func (f *fixture) do(req *http.Request) answer {
	f.t.Helper()
	res, err := noRedirect.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	a := answer{status: res.StatusCode, header: res.Header, body: string(b)}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &a.json); err != nil {
			f.t.Fatalf("bad JSON %q: %v", b, err)
		}
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		f.t.Errorf("%s %s: Cache-Control = %q, want no-store", req.Method, req.URL.Path, res.Header.Get("Cache-Control"))
	}
	return a
}

// authorize calls GET /oauth/authorize with q, as the visitor who (""
// = no cookie).
func (f *fixture) authorize(q url.Values, who string) answer {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/oauth/authorize?"+q.Encode(), nil)
	if who != "" {
		req.AddCookie(&http.Cookie{Name: "who", Value: who})
	}
	return f.do(req)
}

func authzQuery(extra ...string) url.Values {
	q := url.Values{"client_id": {testClient}, "redirect_uri": {testCallback}, "response_type": {"code"},
		"state": {"eyJsb2dpblN0eWxlIjoicG9wdXAifQ=="}, "scope": {"openid"}}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			q.Del(extra[i])
		} else {
			q.Set(extra[i], extra[i+1])
		}
	}
	return q
}

// code runs authorize as alice and returns the code from the redirect.
func (f *fixture) code(q url.Values) string {
	f.t.Helper()
	a := f.authorize(q, "alice")
	if a.status != http.StatusFound {
		f.t.Fatalf("authorize: %d %s", a.status, a.body)
	}
	loc, err := url.Parse(a.header.Get("Location"))
	if err != nil {
		f.t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != testCallback {
		f.t.Fatalf("redirected to %s, want the callback", got)
	}
	if loc.Query().Get("state") != q.Get("state") {
		f.t.Fatalf("state = %q, want %q", loc.Query().Get("state"), q.Get("state"))
	}
	c := loc.Query().Get("code")
	if c == "" {
		f.t.Fatalf("no code in %s", loc)
	}
	return c
}

// exchange posts form to /oauth/token; basic adds HTTP Basic credentials
// (form-encoded as RFC 6749 §2.3.1 says).
func (f *fixture) exchange(form url.Values, basic *[2]string) answer {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	return f.do(req)
}

var goodBasic = &[2]string{testClient, testSecret}

func codeForm(code string, extra ...string) url.Values {
	v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testCallback}, "state": {"x"}}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			v.Del(extra[i])
		} else {
			v.Set(extra[i], extra[i+1])
		}
	}
	return v
}

// identityCall calls GET /oauth/identity with the token as a query
// parameter (viaQuery) or a Bearer header.
func (f *fixture) identityCall(token string, viaQuery bool) answer {
	f.t.Helper()
	u := f.srv.URL + "/oauth/identity"
	if viaQuery {
		u += "?access_token=" + url.QueryEscape(token)
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if !viaQuery {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Accept", "application/json")
	return f.do(req)
}

func wantOAuthError(t *testing.T, a answer, status int, code string) {
	t.Helper()
	if a.status != status || a.json["error"] != code {
		t.Fatalf("got %d %s, want %d error=%s", a.status, a.body, status, code)
	}
}

func TestAuthorizeCodeTokenIdentity(t *testing.T) {
	f := newFixture(t)
	code := f.code(authzQuery())
	a := f.exchange(codeForm(code), goodBasic)
	if a.status != http.StatusOK || a.json["token_type"] != "Bearer" || a.json["expires_in"] != float64(300) {
		t.Fatalf("token: %d %s", a.status, a.body)
	}
	at, _ := a.json["access_token"].(string)
	want := map[string]any{"id": "local:alice", "sub": "local:alice", "username": "alice", "name": "Alice Example",
		"email": "alice@example.test", "email_verified": true}
	for _, viaQuery := range []bool{true, false} {
		id := f.identityCall(at, viaQuery)
		if id.status != http.StatusOK || !reflect.DeepEqual(id.json, want) {
			t.Fatalf("identity (query=%v): %d %s, want %v", viaQuery, id.status, id.body, want)
		}
	}
}

func TestAuthorizeWithoutIdentityGoesToLogin(t *testing.T) {
	f := newFixture(t)
	q := authzQuery()
	a := f.authorize(q, "")
	if a.status != http.StatusFound {
		t.Fatalf("status %d %s", a.status, a.body)
	}
	loc, _ := url.Parse(a.header.Get("Location"))
	back := loc.Query().Get("return_to")
	if loc.Scheme+"://"+loc.Host+loc.Path != testLogin || back != testBase+"/authorize?"+q.Encode() {
		t.Fatalf("Location = %s (return_to %q)", loc, back)
	}
	// Unknown cookie value: the same.
	if a := f.authorize(q, "mallory"); a.status != http.StatusFound || !strings.HasPrefix(a.header.Get("Location"), testLogin+"?") {
		t.Fatalf("unknown visitor: %d %s", a.status, a.header.Get("Location"))
	}
	// An unavailable source is a 502 page, not a login redirect.
	if a := f.authorize(q, "down"); a.status != http.StatusBadGateway || a.header.Get("Location") != "" {
		t.Fatalf("source down: %d %s", a.status, a.header.Get("Location"))
	}
	// Without a login page: 401.
	f2 := newFixture(t, func(c *Config) { c.LoginURL = "" })
	if a := f2.authorize(q, ""); a.status != http.StatusUnauthorized || a.header.Get("Location") != "" {
		t.Fatalf("no login URL: %d %s", a.status, a.header.Get("Location"))
	}
}

func TestAuthorizeRejectsWrongClientOrRedirect(t *testing.T) {
	f := newFixture(t)
	for name, q := range map[string]url.Values{
		"unknown client":         authzQuery("client_id", "evil"),
		"missing client":         authzQuery("client_id", ""),
		"other redirect":         authzQuery("redirect_uri", "https://evil.test/_oauth/rcsso"),
		"callback of other svc":  authzQuery("redirect_uri", testRC+"/_oauth/other"),
		"callback with suffix":   authzQuery("redirect_uri", testCallback+"/../x"),
		"repeated redirect_uri":  {"client_id": {testClient}, "redirect_uri": {testCallback, "https://evil.test/"}, "response_type": {"code"}},
		"repeated client_id":     {"client_id": {testClient, testClient}, "redirect_uri": {testCallback}, "response_type": {"code"}},
		"callback different url": authzQuery("redirect_uri", "http://chat.example.test/_oauth/rcsso"),
	} {
		a := f.authorize(q, "alice")
		if a.status != http.StatusBadRequest || a.header.Get("Location") != "" {
			t.Errorf("%s: %d, Location %q; want 400 and no redirect", name, a.status, a.header.Get("Location"))
		}
	}
	// Errors the client can be told about go to the callback.
	for name, q := range map[string]url.Values{
		"token flow":       authzQuery("response_type", "token"),
		"bad pkce method":  authzQuery("code_challenge", strings.Repeat("a", 43), "code_challenge_method", "S512"),
		"short challenge":  authzQuery("code_challenge", "abc", "code_challenge_method", "S256"),
		"method w/o chall": authzQuery("code_challenge_method", "S256"),
	} {
		a := f.authorize(q, "alice")
		loc, _ := url.Parse(a.header.Get("Location"))
		if a.status != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), testCallback+"?") ||
			loc.Query().Get("error") == "" || loc.Query().Get("code") != "" || loc.Query().Get("state") != q.Get("state") {
			t.Errorf("%s: %d %s", name, a.status, a.header.Get("Location"))
		}
	}
	// redirect_uri may be left out (only one is registered), and then the
	// token request may omit it too.
	code := f.code(authzQuery("redirect_uri", ""))
	if a := f.exchange(codeForm(code, "redirect_uri", ""), goodBasic); a.status != http.StatusOK {
		t.Fatalf("no redirect_uri anywhere: %d %s", a.status, a.body)
	}
}

func TestTokenClientAuthentication(t *testing.T) {
	f := newFixture(t)
	// client_secret_post
	if a := f.exchange(codeForm(f.code(authzQuery()), "client_id", testClient, "client_secret", testSecret), nil); a.status != http.StatusOK {
		t.Fatalf("client_secret_post: %d %s", a.status, a.body)
	}
	// client_secret_basic with the values not form-encoded (Rocket.Chat
	// sends them raw).
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/oauth/token", strings.NewReader(codeForm(f.code(authzQuery())).Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(testClient, "plainsecret")
	f2 := newFixture(t, func(c *Config) { c.ClientSecret = "plainsecret" })
	req.URL, _ = url.Parse(f2.srv.URL + "/oauth/token")
	req.Body = io.NopCloser(strings.NewReader(codeForm(f2.code(authzQuery())).Encode()))
	if a := f2.do(req); a.status != http.StatusOK {
		t.Fatalf("raw basic credentials: %d %s", a.status, a.body)
	}
	for name, c := range map[string]struct {
		form   url.Values
		basic  *[2]string
		status int
		err    string
	}{
		"wrong secret basic":  {codeForm(f.code(authzQuery())), &[2]string{testClient, "nope"}, 401, "invalid_client"},
		"wrong client basic":  {codeForm(f.code(authzQuery())), &[2]string{"other", testSecret}, 401, "invalid_client"},
		"wrong secret post":   {codeForm(f.code(authzQuery()), "client_id", testClient, "client_secret", "nope"), nil, 401, "invalid_client"},
		"no credentials":      {codeForm(f.code(authzQuery())), nil, 401, "invalid_client"},
		"both methods":        {codeForm(f.code(authzQuery()), "client_secret", testSecret), goodBasic, 400, "invalid_request"},
		"other grant":         {codeForm(f.code(authzQuery()), "grant_type", "client_credentials"), goodBasic, 400, "unsupported_grant_type"},
		"other redirect_uri":  {codeForm(f.code(authzQuery()), "redirect_uri", "https://evil.test/cb"), goodBasic, 400, "invalid_grant"},
		"missing redirecturi": {codeForm(f.code(authzQuery()), "redirect_uri", ""), goodBasic, 400, "invalid_grant"},
		"garbage code":        {codeForm("abc"), goodBasic, 400, "invalid_grant"},
	} {
		a := f.exchange(c.form, c.basic)
		if a.status != c.status || a.json["error"] != c.err {
			t.Errorf("%s: %d %s, want %d %s", name, a.status, a.body, c.status, c.err)
		}
		if c.status == 401 && a.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate", name)
		}
	}
	req, _ = http.NewRequest(http.MethodPost, f.srv.URL+"/oauth/token", strings.NewReader(`{"code":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	wantOAuthError(t, f.do(req), 400, "invalid_request")
}

func TestCodeIsSingleUse(t *testing.T) {
	f := newFixture(t)
	code := f.code(authzQuery())
	if a := f.exchange(codeForm(code), goodBasic); a.status != http.StatusOK {
		t.Fatalf("first use: %d %s", a.status, a.body)
	}
	wantOAuthError(t, f.exchange(codeForm(code), goodBasic), 400, "invalid_grant")
	// A failed attempt (wrong redirect_uri) does not burn the code.
	code2 := f.code(authzQuery())
	wantOAuthError(t, f.exchange(codeForm(code2, "redirect_uri", testRC+"/x"), goodBasic), 400, "invalid_grant")
	if a := f.exchange(codeForm(code2), goodBasic); a.status != http.StatusOK {
		t.Fatalf("after a failed attempt: %d %s", a.status, a.body)
	}
}

func TestCodeAndTokenExpire(t *testing.T) {
	f := newFixture(t)
	code := f.code(authzQuery())
	f.clock.Advance(59 * time.Second)
	a := f.exchange(codeForm(code), goodBasic)
	if a.status != http.StatusOK {
		t.Fatalf("59 s old code: %d %s", a.status, a.body)
	}
	at := a.json["access_token"].(string)
	code = f.code(authzQuery())
	f.clock.Advance(60 * time.Second)
	wantOAuthError(t, f.exchange(codeForm(code), goodBasic), 400, "invalid_grant")
	// The access token was issued 60 s ago: still good until 300 s.
	if a := f.identityCall(at, false); a.status != http.StatusOK {
		t.Fatalf("60 s old access token: %d %s", a.status, a.body)
	}
	f.clock.Advance(240 * time.Second)
	a = f.identityCall(at, false)
	wantOAuthError(t, a, 401, "invalid_token")
	if !strings.Contains(a.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("WWW-Authenticate = %q", a.header.Get("WWW-Authenticate"))
	}
}

func TestTamperedAndForeignTokensAreRejected(t *testing.T) {
	f := newFixture(t)
	at, exp := f.p.IssueAccessToken(alice)
	if exp != 300 {
		t.Fatalf("expiresIn = %d", exp)
	}
	if a := f.identityCall(at, true); a.status != http.StatusOK {
		t.Fatalf("fresh token: %d %s", a.status, a.body)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(at)
	for i := range raw {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		if a := f.identityCall(base64.RawURLEncoding.EncodeToString(b), i%2 == 0); a.status != http.StatusUnauthorized {
			t.Fatalf("byte %d flipped: %d %s", i, a.status, a.body)
		}
	}
	// A code is not an access token, and an access token is not a code.
	code := f.code(authzQuery())
	wantOAuthError(t, f.identityCall(code, false), 401, "invalid_token")
	wantOAuthError(t, f.exchange(codeForm(at), goodBasic), 400, "invalid_grant")
	// Another provider (other key, other client, other service) does not
	// accept this one's tokens.
	for name, mod := range map[string]func(*Config){
		"other key": func(c *Config) {
			k := sha256.Sum256([]byte("other key"))
			c.Sealer, _ = sealer.New(k[:])
		},
		"other client":  func(c *Config) { c.ClientID = "other" },
		"other service": func(c *Config) { c.ServiceName = "other" },
	} {
		g := newFixture(t, mod)
		if a := g.identityCall(at, false); a.status != http.StatusUnauthorized {
			t.Errorf("%s accepted the token: %d", name, a.status)
		}
	}
}

func TestIdentityTokenTransport(t *testing.T) {
	f := newFixture(t)
	at, _ := f.p.IssueAccessToken(alice)
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/oauth/identity?access_token="+at, nil)
	req.Header.Set("Authorization", "Bearer "+at)
	wantOAuthError(t, f.do(req), 400, "invalid_request")
	req, _ = http.NewRequest(http.MethodGet, f.srv.URL+"/oauth/identity?access_token="+at+"&access_token="+at, nil)
	wantOAuthError(t, f.do(req), 400, "invalid_request")
	req, _ = http.NewRequest(http.MethodGet, f.srv.URL+"/oauth/identity", nil)
	req.Header.Set("Authorization", "Basic "+at)
	wantOAuthError(t, f.do(req), 400, "invalid_request")
	req, _ = http.NewRequest(http.MethodGet, f.srv.URL+"/oauth/identity", nil)
	a := f.do(req)
	if a.status != http.StatusUnauthorized || !strings.HasPrefix(a.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("no token: %d %q", a.status, a.header.Get("WWW-Authenticate"))
	}
	req, _ = http.NewRequest(http.MethodGet, f.srv.URL+"/oauth/identity", nil)
	req.Header.Set("Authorization", "bearer "+at) // the scheme is case-insensitive
	if a := f.do(req); a.status != http.StatusOK {
		t.Fatalf("lower-case bearer: %d", a.status)
	}
	req, _ = http.NewRequest(http.MethodPost, f.srv.URL+"/oauth/identity", nil)
	if a := f.do(req); a.status != http.StatusMethodNotAllowed {
		t.Fatalf("POST identity: %d", a.status)
	}
	req, _ = http.NewRequest(http.MethodGet, f.srv.URL+"/oauth/token", nil)
	if a := f.do(req); a.status != http.StatusMethodNotAllowed {
		t.Fatalf("GET token: %d", a.status)
	}
	req, _ = http.NewRequest(http.MethodGet, f.srv.URL+"/oauth/nope", nil)
	if a := f.do(req); a.status != http.StatusNotFound {
		t.Fatalf("unknown route: %d", a.status)
	}
}

func TestIdentityProfile(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Username = func(id identity.Identity) string { return "mapped-" + id.Username }
	})
	bob := identity.Identity{Subject: "jwt:42", Username: "bob", Email: "bob@example.test", EmailVerified: false,
		AvatarURL: "https://www.example.test/bob.png", Roles: []string{}}
	at, _ := f.p.IssueAccessToken(bob)
	a := f.identityCall(at, false)
	want := map[string]any{"id": "jwt:42", "sub": "jwt:42", "username": "mapped-bob", "name": "mapped-bob",
		"email_verified": false, "picture": "https://www.example.test/bob.png", "roles": []any{}}
	if !reflect.DeepEqual(a.json, want) {
		t.Fatalf("identity = %s, want %v (an unverified e-mail is never passed on)", a.body, want)
	}
}

func TestPKCE(t *testing.T) {
	f := newFixture(t)
	verifier := strings.Repeat("v", 50)
	sum := sha256.Sum256([]byte(verifier))
	s256 := base64.RawURLEncoding.EncodeToString(sum[:])
	ok := func(q url.Values, form ...string) {
		t.Helper()
		if a := f.exchange(codeForm(f.code(q), form...), goodBasic); a.status != http.StatusOK {
			t.Fatalf("%v %v: %d %s", q, form, a.status, a.body)
		}
	}
	fail := func(q url.Values, form ...string) {
		t.Helper()
		wantOAuthError(t, f.exchange(codeForm(f.code(q), form...), goodBasic), 400, "invalid_grant")
	}
	ok(authzQuery("code_challenge", s256, "code_challenge_method", "S256"), "code_verifier", verifier)
	ok(authzQuery("code_challenge", verifier), "code_verifier", verifier) // plain is the default method
	fail(authzQuery("code_challenge", s256, "code_challenge_method", "S256"), "code_verifier", strings.Repeat("w", 50))
	fail(authzQuery("code_challenge", s256, "code_challenge_method", "S256"))
	fail(authzQuery("code_challenge", s256, "code_challenge_method", "S256"), "code_verifier", s256) // plain use of an S256 challenge
	fail(authzQuery(), "code_verifier", verifier)
}

func TestUsedCodeSetIsBounded(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxPendingCodes = 2 })
	for range 2 {
		if a := f.exchange(codeForm(f.code(authzQuery())), goodBasic); a.status != http.StatusOK {
			t.Fatalf("%d %s", a.status, a.body)
		}
	}
	code := f.code(authzQuery())
	wantOAuthError(t, f.exchange(codeForm(code), goodBasic), 503, "temporarily_unavailable")
	f.clock.Advance(60 * time.Second) // the two redeemed codes expire
	code = f.code(authzQuery())
	if a := f.exchange(codeForm(code), goodBasic); a.status != http.StatusOK {
		t.Fatalf("after expiry: %d %s", a.status, a.body)
	}
}

func TestNewValidates(t *testing.T) {
	k := sha256.Sum256(nil)
	s, _ := sealer.New(k[:])
	good := Config{ServiceName: "rcsso", ClientID: "c", ClientSecret: "s", RocketChatURL: testRC, BaseURL: testBase, Sealer: s}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"service":  func(c *Config) { c.ServiceName = "" },
		"client":   func(c *Config) { c.ClientID = "" },
		"secret":   func(c *Config) { c.ClientSecret = "" },
		"sealer":   func(c *Config) { c.Sealer = nil },
		"rc url":   func(c *Config) { c.RocketChatURL = "chat.example.test" },
		"base url": func(c *Config) { c.BaseURL = "/oauth" },
	} {
		c := good
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
	if got := CallbackURL("https://chat.example.test/rc/", "rcsso"); got != "https://chat.example.test/rc/_oauth/rcsso" {
		t.Fatalf("CallbackURL = %q", got)
	}
}

// FuzzOpen feeds arbitrary strings to the code and token decoder: it must
// never panic, and accept nothing but the exact blobs it issued.
func FuzzOpen(f *testing.F) {
	k := sha256.Sum256([]byte("fuzz"))
	s, _ := sealer.New(k[:])
	p, err := New(Config{ServiceName: "rcsso", ClientID: "c", ClientSecret: "s", RocketChatURL: testRC, BaseURL: testBase, Sealer: s})
	if err != nil {
		f.Fatal(err)
	}
	at, _ := p.IssueAccessToken(alice)
	code := p.seal(kindCode, grant{ID: "x", Exp: 1, Profile: profile{Subject: "local:alice"}})
	for _, seed := range []string{at, code, "", "A", "====", at[:len(at)-1], at + "A", strings.ToUpper(at), at[:len(at)-1] + "B"} {
		f.Add(seed)
	}
	// Seeds are computed anew in every fuzzing worker (a fresh random
	// token each time), so the invariant is stated without them: whatever
	// opens is canonical base64 of an authentic blob of exactly one kind.
	f.Fuzz(func(t *testing.T, in string) {
		opened := 0
		for _, kind := range []string{kindAccessToken, kindCode} {
			g, err := p.open(kind, in)
			if err != nil {
				if !errors.Is(err, errBadBlob) {
					t.Fatalf("error %v is not errBadBlob", err)
				}
				continue
			}
			opened++
			raw, _ := base64.RawURLEncoding.DecodeString(in)
			if base64.RawURLEncoding.EncodeToString(raw) != in || g.Profile.Subject != "local:alice" {
				t.Fatalf("open(%s, %q) accepted a non-canonical or foreign blob: %+v", kind, in, g)
			}
		}
		if opened > 1 {
			t.Fatalf("%q opened as both a code and an access token", in)
		}
		if in == at || in == code {
			if opened != 1 {
				t.Fatalf("an issued blob did not open: %q", in)
			}
		}
	})
}

// Rocket.Chat 8.7's server-side OAuth flow uses the redirect URI
// <Site_Url>/oauth/<service>/callback: authorize sends the code there and
// the token exchange accepts it; a code issued for one callback is not
// redeemed with the other.
func TestModernFlowCallback(t *testing.T) {
	f := newFixture(t)
	modern := testRC + "/oauth/rcsso/callback"
	a := f.authorize(authzQuery("redirect_uri", modern), "alice")
	loc, _ := url.Parse(a.header.Get("Location"))
	if a.status != http.StatusFound || loc == nil || loc.Scheme+"://"+loc.Host+loc.Path != modern || loc.Query().Get("code") == "" {
		t.Fatalf("authorize with the 8.7 callback: %d %s", a.status, a.header.Get("Location"))
	}
	code := loc.Query().Get("code")
	wantOAuthError(t, f.exchange(codeForm(code), goodBasic), http.StatusBadRequest, "invalid_grant")
	if a := f.exchange(codeForm(code, "redirect_uri", modern), goodBasic); a.status != http.StatusOK {
		t.Fatalf("token with the 8.7 callback: %d %s", a.status, a.body)
	}
	// Errors go to the callback the request named.
	a = f.authorize(authzQuery("redirect_uri", modern, "response_type", "token"), "alice")
	if loc, _ := url.Parse(a.header.Get("Location")); loc == nil || !strings.HasPrefix(loc.String(), modern+"?") || loc.Query().Get("error") == "" {
		t.Fatalf("error redirect: %s", a.header.Get("Location"))
	}
	for _, bad := range []string{testRC + "/oauth/other/callback", testRC + "/oauth/rcsso/callback/x", testRC + "/oauth/rcsso"} {
		if a := f.authorize(authzQuery("redirect_uri", bad), "alice"); a.status != http.StatusBadRequest {
			t.Errorf("%s: %d", bad, a.status)
		}
	}
}
