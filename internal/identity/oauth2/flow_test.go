package oauth2

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/oauth2/oauth2test"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/websession"
)

func testKey() []byte { return []byte("0123456789abcdef0123456789abcdef") }

// rig is rcsso (this source behind an httptest server, as /auth/gh/) plus
// the fake provider, and a browser (cookie jar, follows redirects).
type rig struct {
	t      *testing.T
	p      *oauth2test.Provider
	src    *Source
	rc     *httptest.Server
	jar    http.CookieJar
	client *http.Client
	skew   atomic.Int64 // added to rcsso's clock
}

// newRig starts a github-preset source named "gh" against the fake
// provider; mod may change the options first.
func newRig(t *testing.T, mod func(*Options)) *rig {
	t.Helper()
	rg := &rig{t: t, p: oauth2test.New(t)}
	var h http.Handler = http.NotFoundHandler()
	rg.rc = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(rg.rc.Close)
	now := func() time.Time { return time.Now().Add(time.Duration(rg.skew.Load())) }
	o := Options{
		Name:         "gh",
		Preset:       "github",
		AuthURL:      rg.p.AuthURL(),
		TokenURL:     rg.p.TokenURL(),
		UserinfoURL:  rg.p.UserinfoURL(),
		ClientID:     rg.p.ClientID,
		ClientSecret: rg.p.ClientSecret,
		RedirectURL:  rg.rc.URL + "/auth/gh/callback",
		Sessions:     websession.New(memory.New(), websession.Options{CookieName: "rcsso_session", TTL: time.Hour, SameSite: http.SameSiteLaxMode, Now: now}),
		Once:         memory.New(),
		StateKey:     testKey(),
		SafeReturnTo: func(s string) string {
			if strings.HasPrefix(s, rg.rc.URL+"/") {
				return s
			}
			return ""
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:    now,
	}
	if mod != nil {
		mod(&o)
	}
	var err error
	rg.src, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/auth/gh/", http.StripPrefix("/auth/gh", rg.src.Handler()))
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
	return rg.rc.URL + "/auth/gh/login?return_to=" + url.QueryEscape(returnTo)
}

// callbackURL runs a login in jar up to the provider's redirect back to
// rcsso and returns that callback URL (jar then holds the state cookie).
func (rg *rig) callbackURL(jar http.CookieJar) string {
	rg.t.Helper()
	c := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == "/auth/gh/callback" {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, _ := rg.get(c, rg.loginURL(rg.rc.URL+"/popup"))
	if resp.StatusCode != http.StatusFound {
		rg.t.Fatalf("provider answered %d, want a redirect to the callback", resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// whoami returns the identity rcsso sees in the rig's browser, or nil.
func (rg *rig) whoami() *identity.Identity {
	return rg.whoamiIn(rg.client)
}

func (rg *rig) whoamiIn(c *http.Client) *identity.Identity {
	rg.t.Helper()
	resp, body := rg.get(c, rg.rc.URL+"/whoami")
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return nil
	case http.StatusOK:
		var id identity.Identity
		if err := json.Unmarshal([]byte(body), &id); err != nil {
			rg.t.Fatal(err)
		}
		id.AuthTime = time.Time{}
		return &id
	}
	rg.t.Fatalf("whoami: %d %s", resp.StatusCode, body)
	return nil
}

// login runs a whole login in the rig's browser and returns the last
// response.
func (rg *rig) login() (*http.Response, string) {
	rg.t.Helper()
	return rg.get(rg.client, rg.loginURL(rg.rc.URL+"/popup"))
}

func (rg *rig) stateCookie(jar http.CookieJar) string {
	u, _ := url.Parse(rg.rc.URL + "/auth/gh/callback")
	for _, c := range jar.Cookies(u) {
		if c.Name == "rcsso_oauth2_gh" {
			return c.Value
		}
	}
	return ""
}

func wantPage(t *testing.T, resp *http.Response, body string, status int, text string) {
	t.Helper()
	if resp.StatusCode != status || !strings.Contains(body, text) || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("got %d %q (%s), want %d with %q", resp.StatusCode, body, resp.Header.Get("Content-Type"), status, text)
	}
}

func TestFlowGitHubLogin(t *testing.T) {
	rg := newRig(t, nil)
	resp, body := rg.login()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.String() != rg.rc.URL+"/popup" || body != "popup page" {
		t.Fatalf("login ended at %s with %d %q", resp.Request.URL, resp.StatusCode, body)
	}
	if rg.stateCookie(rg.jar) != "" {
		t.Error("state cookie not cleared")
	}
	az := rg.p.LastAuthorize()
	tf, basic := rg.p.LastTokenRequest()
	if az.Get("code_challenge_method") != "S256" || az.Get("code_challenge") == "" || tf.Get("code_verifier") == "" {
		t.Errorf("PKCE missing: authorize %v, token %v", az, tf)
	}
	if az.Get("scope") != "read:user user:email" || az.Get("redirect_uri") != rg.rc.URL+"/auth/gh/callback" || az.Get("state") == "" {
		t.Errorf("authorization request %v", az)
	}
	if basic || tf.Get("client_secret") != rg.p.ClientSecret {
		t.Errorf("GitHub takes the client secret in the body; basic=%v form=%v", basic, tf)
	}
	want := identity.Identity{Subject: "gh:4242", Source: "gh", Username: "octo", Name: "Octo Cat",
		Email: "octo@example.test", EmailVerified: true, AvatarURL: "https://avatars.example.test/u/4242"}
	if id := rg.whoami(); id == nil || !reflect.DeepEqual(*id, want) {
		t.Fatalf("Identify = %+v, want %+v", id, want)
	}
}

// GitHub's /user e-mail is the public profile address, which GitHub does
// not say is verified: only a verified primary address from /user/emails
// counts; without one (or without the user:email scope) there is none.
func TestFlowGitHubEmail(t *testing.T) {
	for name, tc := range map[string]struct {
		emails  any    // /user/emails answer; nil: 404 (scope not granted)
		handler bool   // /user/emails answers 500
		want    string // e-mail kept
	}{
		"primary verified": {emails: []any{map[string]any{"email": "a@x.test", "primary": true, "verified": true}}, want: "a@x.test"},
		"primary unverified": {emails: []any{map[string]any{"email": "a@x.test", "primary": true, "verified": false},
			map[string]any{"email": "b@x.test", "primary": false, "verified": true}}},
		"verified as a string": {emails: []any{map[string]any{"email": "a@x.test", "primary": true, "verified": "true"}}},
		"not a list":           {emails: map[string]any{"email": "a@x.test", "primary": true, "verified": true}},
		"no scope":             {},
		"provider error":       {handler: true},
	} {
		t.Run(name, func(t *testing.T) {
			rg := newRig(t, nil)
			rg.p.SetJSON("/user", map[string]any{"id": 7, "login": "octo", "email": "public@x.test"})
			switch {
			case tc.handler:
				rg.p.Handle("/user/emails", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "oops", http.StatusInternalServerError) })
			case tc.emails != nil:
				rg.p.SetJSON("/user/emails", tc.emails)
			default:
				rg.p.Handle("/user/emails", http.NotFound)
			}
			if resp, body := rg.login(); resp.StatusCode != http.StatusOK {
				t.Fatalf("login: %d %s", resp.StatusCode, body)
			}
			id := rg.whoami()
			if id == nil || id.Email != tc.want || id.EmailVerified != (tc.want != "") {
				t.Fatalf("Identify = %+v, want e-mail %q", id, tc.want)
			}
		})
	}
}

// User ids beyond 2^53 keep every digit: two people never share a subject.
func TestFlowLargeNumericID(t *testing.T) {
	rg := newRig(t, nil)
	rg.p.Handle("/user", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"id": 12345678901234567891, "login": "big"}`)
	})
	if resp, body := rg.login(); resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	if id := rg.whoami(); id == nil || id.Subject != "gh:12345678901234567891" {
		t.Fatalf("Identify = %+v", id)
	}
}

func TestFlowGroups(t *testing.T) {
	rg := newRig(t, func(o *Options) { o.GroupsURL = o.UserinfoURL + "/orgs?per_page=100" })
	if resp, body := rg.login(); resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	// Sessions keep groups once the store does; the login itself maps them.
	if got, err := rg.identityFromProvider(); err != nil || !reflect.DeepEqual(got.Groups, []string{"rcsso-devs", "chat-admins"}) {
		t.Fatalf("groups %v, %v", got.Groups, err)
	}

	// A provider that cannot list the groups fails the login: no groups
	// would look like the person left every group.
	rg2 := newRig(t, func(o *Options) { o.GroupsURL = o.UserinfoURL + "/orgs" })
	rg2.p.Handle("/user/orgs", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) })
	resp, body := rg2.login()
	wantPage(t, resp, body, http.StatusBadGateway, "could not read your groups from GitHub")
	if rg2.whoami() != nil {
		t.Fatal("session started")
	}
}

// identityFromProvider runs Source.identity with a fresh token from the
// fake provider (a whole login in a throw-away browser, capturing the
// token from the provider's answer).
func (rg *rig) identityFromProvider() (identity.Identity, error) {
	rg.t.Helper()
	jar, _ := cookiejar.New(nil)
	cb, _ := url.Parse(rg.callbackURL(jar))
	form := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
		"redirect_uri": {rg.rc.URL + "/auth/gh/callback"}, "client_id": {rg.p.ClientID}, "client_secret": {rg.p.ClientSecret}}
	// The verifier is in the sealed cookie.
	st, err := rg.src.codec.decode(rg.stateCookie(jar), rg.src.now())
	if err != nil {
		rg.t.Fatal(err)
	}
	form.Set("code_verifier", st.Verifier)
	resp, err := http.PostForm(rg.p.TokenURL(), form)
	if err != nil {
		rg.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		rg.t.Fatalf("token: %v", err)
	}
	return rg.src.identity(context.Background(), tok.AccessToken)
}

func TestFlowTamperedState(t *testing.T) {
	rg := newRig(t, nil)
	cb, _ := url.Parse(rg.callbackURL(rg.jar))
	q := cb.Query()
	q.Set("state", q.Get("state")+"x")
	cb.RawQuery = q.Encode()
	resp, body := rg.get(rg.client, cb.String())
	wantPage(t, resp, body, http.StatusBadRequest, "does not belong")
	if rg.whoami() != nil {
		t.Fatal("session started")
	}
	if n := rg.p.Hits(oauth2test.TokenPath); n != 0 {
		t.Fatalf("%d token requests for a state that does not match", n)
	}
}

func TestFlowMissingStateCookie(t *testing.T) {
	rg := newRig(t, nil)
	cb := rg.callbackURL(rg.jar)
	other, _ := cookiejar.New(nil) // another browser, or cookies blocked
	resp, body := rg.get(&http.Client{Jar: other}, cb)
	wantPage(t, resp, body, http.StatusBadRequest, "not started in this browser")
	if rg.whoamiIn(&http.Client{Jar: other}) != nil {
		t.Fatal("session started")
	}
}

func TestFlowExpiredState(t *testing.T) {
	rg := newRig(t, nil)
	cb := rg.callbackURL(rg.jar)
	rg.skew.Store(int64(StateTTL + time.Minute))
	resp, body := rg.get(rg.client, cb)
	wantPage(t, resp, body, http.StatusBadRequest, "took too long")
	if rg.whoami() != nil {
		t.Fatal("session started")
	}
}

// A captured callback URL and state cookie, replayed in another browser
// after the person used them, are refused before any token request.
func TestFlowStateReplay(t *testing.T) {
	rg := newRig(t, nil)
	cb := rg.callbackURL(rg.jar)
	saved := rg.stateCookie(rg.jar)
	if resp, _ := rg.get(rg.client, cb); resp.Request.URL.Path != "/popup" {
		t.Fatalf("first callback ended at %s", resp.Request.URL)
	}
	tokenCalls := rg.p.Hits(oauth2test.TokenPath)
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(rg.rc.URL + "/auth/gh/")
	jar.SetCookies(u, []*http.Cookie{{Name: "rcsso_oauth2_gh", Value: saved, Path: "/auth/gh/"}})
	c := &http.Client{Jar: jar}
	resp, body := rg.get(c, cb)
	wantPage(t, resp, body, http.StatusBadRequest, "already used")
	if rg.whoamiIn(c) != nil {
		t.Fatal("session started")
	}
	if rg.p.Hits(oauth2test.TokenPath) != tokenCalls {
		t.Fatal("a replayed state reached the token endpoint")
	}
}

// An authorization code used once is refused by the provider when an
// attacker slips it into a login of their own (a fresh state): rcsso shows
// a page and starts no session.
func TestFlowCodeReplay(t *testing.T) {
	rg := newRig(t, nil)
	used, _ := url.Parse(rg.callbackURL(rg.jar))
	if resp, _ := rg.get(rg.client, used.String()); resp.Request.URL.Path != "/popup" {
		t.Fatalf("first login ended at %s", resp.Request.URL)
	}
	jar, _ := cookiejar.New(nil)
	fresh, _ := url.Parse(rg.callbackURL(jar))
	q := fresh.Query()
	q.Set("code", used.Query().Get("code"))
	fresh.RawQuery = q.Encode()
	c := &http.Client{Jar: jar}
	resp, body := rg.get(c, fresh.String())
	wantPage(t, resp, body, http.StatusBadGateway, "could not complete the login with GitHub")
	if rg.whoamiIn(c) != nil {
		t.Fatal("session started with a replayed code")
	}
}

// A code issued to one browser's login, injected into another browser's
// login (login CSRF, code injection), fails PKCE at the provider.
func TestFlowCodeInjection(t *testing.T) {
	rg := newRig(t, nil)
	victim, _ := url.Parse(rg.callbackURL(rg.jar))
	jar, _ := cookiejar.New(nil)
	attacker, _ := url.Parse(rg.callbackURL(jar))
	q := attacker.Query()
	q.Set("code", victim.Query().Get("code"))
	attacker.RawQuery = q.Encode()
	c := &http.Client{Jar: jar}
	resp, body := rg.get(c, attacker.String())
	wantPage(t, resp, body, http.StatusBadGateway, "could not complete")
	if rg.whoamiIn(c) != nil {
		t.Fatal("session started with another browser's code")
	}
}

func TestFlowAccessDenied(t *testing.T) {
	rg := newRig(t, nil)
	rg.p.Handle(oauth2test.AuthorizePath, func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		http.Redirect(w, r, q.Get("redirect_uri")+"?error=access_denied&error_description=%3Cb%3Eno%3C%2Fb%3E&state="+url.QueryEscape(q.Get("state")), http.StatusFound)
	})
	resp, body := rg.login()
	wantPage(t, resp, body, http.StatusBadRequest, "GitHub did not log you in (access_denied)")
	if strings.Contains(body, "<b>") {
		t.Error("provider text rendered as HTML")
	}
	if rg.whoami() != nil {
		t.Fatal("session started")
	}
}

func TestFlowTokenEndpointFailures(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"500": func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusInternalServerError) },
		"redirect": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://127.0.0.1:1/token", http.StatusTemporaryRedirect)
		},
		"not JSON": func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "<html>hello</html>") },
		"mac token": func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, map[string]any{"access_token": "t", "token_type": "mac"})
		},
		"no token":     func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, map[string]any{"token_type": "bearer"}) },
		"error in 200": func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "error=bad_verification_code") }, // GitHub's style
	} {
		t.Run(name, func(t *testing.T) {
			rg := newRig(t, nil)
			rg.p.Handle(oauth2test.TokenPath, h)
			resp, body := rg.login()
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "GitHub") {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			if rg.whoami() != nil {
				t.Fatal("session started")
			}
			if rg.p.Hits("/user") != 0 {
				t.Fatal("userinfo called without a usable token")
			}
		})
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Hostile or broken userinfo answers end on a page that says what went
// wrong, and start no session.
func TestFlowHostileUserinfo(t *testing.T) {
	var evilHits atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilHits.Add(1)
		writeJSON(w, map[string]any{"id": 1, "login": "evil"})
	}))
	t.Cleanup(evil.Close)
	huge := `{"id": 1, "login": "octo", "pad": "` + strings.Repeat("x", MaxAPIBody) + `"}`
	for name, tc := range map[string]struct {
		h      http.HandlerFunc
		status int
		text   string
	}{
		"huge body": {func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, huge) }, http.StatusBadGateway, "could not read your profile"},
		"endless body": {func(w http.ResponseWriter, r *http.Request) {
			chunk := []byte(strings.Repeat(" ", 64<<10))
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, http.StatusBadGateway, "could not read your profile"},
		"html":          {func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "<html>sign in</html>") }, http.StatusBadGateway, "could not read your profile"},
		"trailing data": {func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"id":1} {"id":2}`) }, http.StatusBadGateway, "could not read your profile"},
		"array":         {func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `[{"id":1}]`) }, http.StatusBadGateway, "could not read your profile"},
		"null":          {func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `null`) }, http.StatusBadGateway, "could not read your profile"},
		"redirect":      {func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, evil.URL+"/user", http.StatusFound) }, http.StatusBadGateway, "could not read your profile"},
		"500":           {func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "oops", http.StatusInternalServerError) }, http.StatusBadGateway, "GitHub had a problem answering rcsso (error 500)"},
		"401":           {func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusUnauthorized) }, http.StatusBadGateway, "request for your profile (error 401)"},
		"missing id":    {func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, map[string]any{"login": "octo"}) }, http.StatusBadGateway, "did not send a usable user id"},
		"null id":       {func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, map[string]any{"id": nil, "login": "octo"}) }, http.StatusBadGateway, "did not send a usable user id"},
		"boolean id": {func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, map[string]any{"id": true, "login": "octo"})
		}, http.StatusBadGateway, "did not send a usable user id"},
		"object id": {func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, map[string]any{"id": map[string]any{"n": 1}})
		}, http.StatusBadGateway, "did not send a usable user id"},
		"fractional id": {func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"id": 1.5}`) }, http.StatusBadGateway, "did not send a usable user id"},
		"empty id":      {func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, map[string]any{"id": " "}) }, http.StatusBadGateway, "did not send a usable user id"},
		"control in id": {func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, map[string]any{"id": "1\n2"}) }, http.StatusBadGateway, "did not send a usable user id"},
		"no answer":     {func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, http.StatusGatewayTimeout, "did not answer in time"},
	} {
		t.Run(name, func(t *testing.T) {
			rg := newRig(t, func(o *Options) { o.Timeout = 500 * time.Millisecond })
			rg.p.Handle("/user", tc.h)
			resp, body := rg.login()
			wantPage(t, resp, body, tc.status, tc.text)
			if rg.whoami() != nil {
				t.Fatal("session started")
			}
		})
	}
	if n := evilHits.Load(); n != 0 {
		t.Fatalf("the redirect was followed (%d requests reached its target)", n)
	}
}

// A reserved rcsso:* member in the provider's answer never reaches the
// identity: GitHub's e-mail is only the one from /user/emails.
func TestFlowReservedClaimsDropped(t *testing.T) {
	rg := newRig(t, nil)
	rg.p.SetJSON("/user", map[string]any{"id": 9, "login": "octo", "rcsso:email": "boss@corp.test", "rcsso:email_verified": true})
	rg.p.Handle("/user/emails", http.NotFound)
	if resp, body := rg.login(); resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	if id := rg.whoami(); id == nil || id.Email != "" || id.EmailVerified {
		t.Fatalf("Identify = %+v: an address from the answer's rcsso:email", id)
	}
}

func TestFlowReturnToFiltered(t *testing.T) {
	rg := newRig(t, nil)
	resp, body := rg.get(rg.client, rg.loginURL("https://evil.example/"))
	if resp.Request.URL.Path != "/auth/gh/callback" {
		t.Fatalf("redirected to %s", resp.Request.URL)
	}
	wantPage(t, resp, body, http.StatusOK, "You are logged in")
	if rg.whoami() == nil {
		t.Fatal("no session")
	}
}

func TestRoutes(t *testing.T) {
	rg := newRig(t, nil)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, "/auth/gh/login", http.StatusMethodNotAllowed},
		{http.MethodHead, "/auth/gh/callback", http.StatusMethodNotAllowed},
		{http.MethodGet, "/auth/gh/logout", http.StatusNotFound},
		{http.MethodGet, "/auth/gh/", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, rg.rc.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: %d (Cache-Control %q), want %d", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Cache-Control"), tc.status)
		}
	}
	// The login redirect carries no secret: the client secret and the PKCE
	// verifier stay with rcsso.
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ := rg.get(c, rg.loginURL(rg.rc.URL+"/popup"))
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, rg.p.AuthURL()+"?") || strings.Contains(loc, rg.p.ClientSecret) || strings.Contains(loc, "code_verifier") {
		t.Fatalf("login: %d %s", resp.StatusCode, loc)
	}
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == "rcsso_oauth2_gh" {
			cookie = ck
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/auth/gh/" || cookie.MaxAge != int(StateTTL/time.Second) {
		t.Fatalf("state cookie %+v", cookie)
	}
}

func TestIdentifyOtherSourcesSession(t *testing.T) {
	rg := newRig(t, nil)
	for _, tc := range []struct {
		source string
		ok     bool
	}{{"local", false}, {"gh", true}} {
		w := httptest.NewRecorder()
		if err := rg.src.cfg.Sessions.Start(context.Background(), w, identity.Identity{Subject: tc.source + ":alice", Source: tc.source, Username: "alice"}); err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		for _, c := range w.Result().Cookies() {
			r.AddCookie(c)
		}
		_, err := rg.src.Identify(r)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, identity.ErrNotLoggedIn)) {
			t.Errorf("session of %s: err = %v", tc.source, err)
		}
	}
}
