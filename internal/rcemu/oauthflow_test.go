package rcemu

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// fakeProvider is an OAuth 2.0 provider for the 8.7 flow: authorize is not
// browsed (the test plays the browser), token checks the client, the code
// and the PKCE verifier, identity returns the person.
type fakeProvider struct {
	*httptest.Server
	mu         sync.Mutex
	challenge  map[string]string // code → code_challenge
	tokenForms []url.Values
}

func newFakeProvider(t *testing.T, person map[string]any) *fakeProvider {
	p := &fakeProvider{challenge: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		p.mu.Lock()
		p.tokenForms = append(p.tokenForms, r.PostForm)
		ch, ok := p.challenge[r.PostForm.Get("code")]
		delete(p.challenge, r.PostForm.Get("code"))
		p.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || base64.RawURLEncoding.EncodeToString(sum[:]) != ch || r.PostForm.Get("client_secret") != "cs" || r.PostForm.Get("client_id") != "rc" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at-1", "token_type": "Bearer"})
	})
	mux.HandleFunc("GET /identity", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer at-1" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(person)
	})
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

// issue plays the provider's authorize step: a code bound to the request's
// PKCE challenge.
func (p *fakeProvider) issue(authorize *url.URL) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.challenge["code-1"] = authorize.Query().Get("code_challenge")
	return "code-1"
}

func noRedirects(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) *http.Response {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res
}

// The 8.7 server-side OAuth flow: /oauth/<service> sends the browser to the
// provider with state and PKCE and the callback /oauth/<service>/callback;
// the callback exchanges the code, creates the user and hands the browser a
// single-use login code that loginCode.redeem turns into a resume token.
func TestModernOAuthFlow(t *testing.T) {
	prov := newFakeProvider(t, map[string]any{"id": "local:fay", "username": "fay", "name": "Fay", "email": "fay@example.test"})
	svc := OAuthService{Name: "rcsso", IdentityURL: prov.URL + "/identity", TokenSentVia: "header", UsernameField: "username",
		AuthorizeURL: prov.URL + "/authorize", TokenURL: prov.URL + "/token", ClientID: "rc", ClientSecret: "cs", MergeUsers: true}
	s, ts := newTestServer(t, Config{Profile: "8.7", DisableRateLimit: true, OAuthServices: []OAuthService{svc},
		Settings: map[string]any{"Accounts_OAuth_Use_Modern_Flow": true}})
	browser := noRedirects(t)

	res := get(t, browser, ts.URL+"/oauth/rcsso?loginClient=mobile")
	loc, _ := url.Parse(res.Header.Get("Location"))
	q := loc.Query()
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), prov.URL+"/authorize?") ||
		q.Get("redirect_uri") != ts.URL+"/oauth/rcsso/callback" || q.Get("client_id") != "rc" || q.Get("response_type") != "code" ||
		q.Get("code_challenge_method") != "S256" || len(q.Get("state")) < 32 {
		t.Fatalf("start: %d %s", res.StatusCode, loc)
	}
	code := prov.issue(loc)

	// A callback with another state is refused.
	if res := get(t, browser, ts.URL+"/oauth/rcsso/callback?code="+code+"&state=forged"); res.Header.Get("Location") != "/login" {
		t.Fatalf("forged state: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	res = get(t, browser, ts.URL+"/oauth/rcsso/callback?code="+code+"&state="+q.Get("state"))
	dest, _ := url.Parse(res.Header.Get("Location"))
	loginCode := dest.Query().Get("loginCode")
	if res.StatusCode != http.StatusFound || dest.Path != "/home" || len(loginCode) != 64 || dest.Query().Get("loginClient") != "mobile" ||
		dest.Query().Get("resumeToken") != "" {
		t.Fatalf("callback: %d %s", res.StatusCode, dest)
	}
	if f := prov.tokenForms[0]; f.Get("redirect_uri") != ts.URL+"/oauth/rcsso/callback" || f.Get("grant_type") != "authorization_code" {
		t.Fatalf("token request: %v", f)
	}
	// The state is single-use too.
	if res := get(t, browser, ts.URL+"/oauth/rcsso/callback?code="+code+"&state="+q.Get("state")); res.Header.Get("Location") != "/login" {
		t.Fatalf("state replay: %s", res.Header.Get("Location"))
	}

	c := newClient(t, ts)
	r := c.post("/api/v1/loginCode.redeem", map[string]any{"code": loginCode}).wantStatus(t, 200)
	u, _ := s.UserByUsername("fay")
	if r.str("userId") != u.ID || !tokenRe.MatchString(r.str("loginToken")) || s.OAuthID(u.ID, "rcsso") != "local:fay" {
		t.Fatalf("redeem: %s (user %+v)", r.raw, u)
	}
	c.as(u.ID, r.str("loginToken")).get("/api/v1/me").wantStatus(t, 200)
	c.post("/api/v1/loginCode.redeem", map[string]any{"code": loginCode}).wantStatus(t, 400).
		wantBody(t, `{"success":false,"error":"error-invalid-code"}`)
	c.post("/api/v1/loginCode.redeem", map[string]any{"code": "short"}).wantStatus(t, 400).
		wantBody(t, `{"success":false,"error":"must NOT have fewer than 64 characters [invalid-params]","errorType":"invalid-params"}`)
}

// Without the setting, before 8.7, or for a Custom OAuth service gated on
// 9.0, /oauth/<service> is just the web client.
func TestModernOAuthFlowGates(t *testing.T) {
	svc := OAuthService{Name: "rcsso", IdentityURL: "http://127.0.0.1:1/identity", AuthorizeURL: "http://127.0.0.1:1/authorize",
		TokenURL: "http://127.0.0.1:1/token", ClientID: "rc", ClientSecret: "cs"}
	for _, cfg := range []Config{
		{Profile: "8.7"},
		{Profile: "8.x", Settings: map[string]any{"Accounts_OAuth_Use_Modern_Flow": true}},
		{Profile: "9.0", Settings: map[string]any{"Accounts_OAuth_Use_Modern_Flow": true}},
	} {
		cfg.OAuthServices = []OAuthService{svc}
		_, ts := newTestServer(t, cfg)
		res := get(t, noRedirects(t), ts.URL+"/oauth/rcsso")
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s %v: %d %s", cfg.Profile, cfg.Settings, res.StatusCode, res.Header.Get("Location"))
		}
		if cfg.Profile == "8.x" {
			newClient(t, ts).post("/api/v1/loginCode.redeem", map[string]any{"code": strings.Repeat("a", 64)}).wantStatus(t, 404)
		}
	}
}
