package app

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/rcemu"
)

// oauthEmulated starts an emulator whose Custom OAuth service "rcsso" (and,
// with wordpress, the built-in WordPress provider) points at rcsso's
// identity route, and an rcsso configuration in minting mode oauth without
// Rocket.Chat credentials. Serve the built App with the returned function.
func oauthEmulated(t *testing.T, ec rcemu.Config, wordpress bool) (*rcemu.Server, config.Config, func(*App)) {
	t.Helper()
	var h atomic.Pointer[http.Handler]
	sso := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := h.Load(); p != nil {
			(*p).ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(sso.Close)
	ec.OAuthServices = []rcemu.OAuthService{{Name: "rcsso", IdentityURL: sso.URL + "/oauth/identity", TokenSentVia: "header",
		UsernameField: "username", MergeUsers: true, AuthorizeURL: sso.URL + "/oauth/authorize", TokenURL: sso.URL + "/oauth/token",
		ClientID: "rocketchat", ClientSecret: strings.Repeat("c", 32)}}
	if wordpress {
		ec.OAuthServices = append(ec.OAuthServices, rcemu.OAuthService{Name: "wordpress", Builtin: true, ServerURL: sso.URL,
			IdentityURL: sso.URL + "/oauth/identity", TokenURL: sso.URL + "/oauth/token", AuthorizeURL: sso.URL + "/oauth/authorize", TokenSentVia: "header"})
	}
	ec.AdminPassword, ec.BcryptCost = "pw", bcrypt.MinCost
	emu, err := rcemu.New(ec)
	if err != nil {
		t.Fatal(err)
	}
	rc := httptest.NewServer(emu.Handler())
	t.Cleanup(rc.Close)
	cfg := config.Default()
	cfg.Audit.Path = "off"
	cfg.PublicURL = sso.URL
	cfg.RocketChat.URL = rc.URL
	cfg.Minting.Mode = "oauth"
	cfg.Minting.Options = map[string]any{"oauth": map[string]any{"service_name": "rcsso", "client_id": "rocketchat", "client_secret": strings.Repeat("c", 32)}}
	cfg.Identity = []config.IdentitySource{headerSource()}
	cfg.Store = config.Store{Type: "memory"}
	cfg.Diagnostics.Token = testDiagnosticsToken
	return emu, cfg, func(a *App) { var hh http.Handler = a.Handler; h.Store(&hh) }
}

// readyz is GET /readyz as the operator sees it (with the diagnostics
// token the test configuration sets: testDiagnosticsToken).
func readyz(a *App) (int, string) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/readyz", nil)
	r.Header.Set("Authorization", "Bearer "+a.Config.Diagnostics.Token)
	a.Handler.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

// Rocket.Chat 9.0 without the oauth-enterprise module switches the Custom
// OAuth service off. With no ungated carrier, rcsso refuses to start and
// names create-token, instead of starting and answering every first visit
// with 503 "Rocket.Chat cannot be reached".
func TestOAuthModeOn90WithoutModuleRefusesToStart(t *testing.T) {
	_, cfg, serve := oauthEmulated(t, rcemu.Config{Profile: "9.0"}, false)
	a, err := Build(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		serve(a)
		w := visit(a, "pia", "pia@example.test")
		code, body := readyz(a)
		a.Close()
		t.Fatalf("started in mode oauth on a gated 9.0 workspace; a first visit answers %d %s; /readyz %d %s",
			w.Code, strings.TrimSpace(w.Body.String()), code, strings.TrimSpace(body))
	}
	if !errors.Is(err, ErrIncapable) {
		t.Fatalf("error %v is not ErrIncapable", err)
	}
	for _, want := range []string{"9.0.0", "Premium", "oauth-enterprise", "create-token", "WordPress"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// With the built-in WordPress provider pointing at rcsso, mode oauth keeps
// working on a gated 9.0 workspace through it; /readyz says so. PR #41992
// (WordPress removed) makes rcsso refuse to start instead.
func TestOAuthModeOn90CarriesThroughWordPress(t *testing.T) {
	emu, cfg, serve := oauthEmulated(t, rcemu.Config{Profile: "9.0"}, true)
	a := build(t, cfg)
	serve(a)
	if w := visit(a, "quinn", "quinn@example.test"); w.Code != 200 || !strings.Contains(w.Body.String(), "loginToken") {
		t.Fatalf("first visit: %d %s", w.Code, w.Body)
	}
	u, _ := emu.UserByUsername("quinn")
	if emu.OAuthID(u.ID, "wordpress") == "" || emu.OAuthID(u.ID, "rcsso") != "" {
		t.Fatalf("the user did not log in through wordpress: %+v", u)
	}
	if code, body := readyz(a); code != 200 || !strings.Contains(body, `"minting_via"`) || !strings.Contains(body, "WordPress") {
		t.Fatalf("readyz: %d %s", code, body)
	}

	_, cfg, _ = oauthEmulated(t, rcemu.Config{Profile: "9.0", BuiltinOAuthRemoved: true}, true)
	if a, err := Build(t.Context(), cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "create-token") {
		if a != nil {
			a.Close()
		}
		t.Fatalf("WordPress removed: started or error %v", err)
	}
}

// With the module (or before 9.0) the Custom OAuth service carries the
// logins, and /readyz names it.
func TestOAuthModeUsesCustomServiceWhenOn(t *testing.T) {
	for _, ec := range []rcemu.Config{{Profile: "9.0", OAuthEnterprise: true}, {Profile: "8.7"}} {
		emu, cfg, serve := oauthEmulated(t, ec, true)
		a := build(t, cfg)
		serve(a)
		if w := visit(a, "rey", "rey@example.test"); w.Code != 200 {
			t.Fatalf("%s: first visit: %d %s", ec.Profile, w.Code, w.Body)
		}
		u, _ := emu.UserByUsername("rey")
		if emu.OAuthID(u.ID, "rcsso") == "" {
			t.Fatalf("%s: not logged in through the Custom OAuth service", ec.Profile)
		}
		if code, body := readyz(a); code != 200 || !strings.Contains(body, `OAuth service rcsso: Custom OAuth service \"rcsso\"`) {
			t.Fatalf("%s: readyz: %d %s", ec.Profile, code, body)
		}
	}
}

// Rocket.Chat 8.7's server-side OAuth flow against rcsso's provider: the
// "Log in with …" button sends the browser through rcsso's authorize route
// back to <Site_Url>/oauth/rcsso/callback, which rcsso accepts; Rocket.Chat
// exchanges the code and the browser gets a login code.
func TestModernOAuthFlowThroughRcsso(t *testing.T) {
	emu, cfg, serve := oauthEmulated(t, rcemu.Config{Profile: "8.7", Settings: map[string]any{"Accounts_OAuth_Use_Modern_Flow": true}}, false)
	a := build(t, cfg)
	serve(a)
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := browser.Get(cfg.RocketChat.URL + "/oauth/rcsso")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	authorize := res.Header.Get("Location")
	if !strings.HasPrefix(authorize, cfg.PublicURL+"/oauth/authorize?") || !strings.Contains(authorize, url.QueryEscape(cfg.RocketChat.URL+"/oauth/rcsso/callback")) {
		t.Fatalf("Rocket.Chat sent the browser to %q", authorize)
	}
	// The browser at rcsso's authorize route, behind the trusted proxy.
	r := httptest.NewRequest("GET", authorize, nil)
	r.RemoteAddr = "192.0.2.1:1234"
	r.Header.Set("X-Forwarded-User", "sam")
	r.Header.Set("X-Forwarded-Email", "sam@example.test")
	w := httptest.NewRecorder()
	a.Handler.ServeHTTP(w, r)
	callback := w.Header().Get("Location")
	if w.Code != http.StatusFound || !strings.HasPrefix(callback, cfg.RocketChat.URL+"/oauth/rcsso/callback?") {
		t.Fatalf("rcsso's authorize answered %d, Location %q: %s", w.Code, callback, w.Body)
	}
	res, err = browser.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	home, _ := url.Parse(res.Header.Get("Location"))
	if home == nil || home.Path != "/home" || len(home.Query().Get("loginCode")) != 64 {
		t.Fatalf("callback answered %d, Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	body := strings.NewReader(`{"code":"` + home.Query().Get("loginCode") + `"}`)
	res, err = http.Post(cfg.RocketChat.URL+"/api/v1/loginCode.redeem", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	u, ok := emu.UserByUsername("sam")
	if res.StatusCode != 200 || !ok || emu.OAuthID(u.ID, "rcsso") == "" || u.ResumeTokens != 1 {
		t.Fatalf("redeem %d; user %+v", res.StatusCode, u)
	}
}
