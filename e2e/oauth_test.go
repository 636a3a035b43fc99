package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// oauthClientSecret is the Custom OAuth client secret of envOptions{minting:
// "oauth"}.
const oauthClientSecret = "custom-oauth-client-secret-for-e2e-tests"

// Minting mode oauth: with no Rocket.Chat admin credentials in rcsso, a
// visitor with a website session is logged in to the chat through the API
// URL; Rocket.Chat (the emulator) creates the user itself after asking
// rcsso's identity route.
func TestOAuthModeLogsIntoChatWithoutAdminCredentials(t *testing.T) {
	e := newEnv(t, envOptions{minting: "oauth"})
	if rc := e.app.Config.RocketChat; rc.AdminUserID != "" || rc.AdminToken != "" || rc.AdminUsername != "" ||
		rc.AdminPassword != "" || rc.CreateTokensSecret != "" || e.app.Config.Minting.Mode != "oauth" {
		t.Fatalf("rcsso has Rocket.Chat credentials: %+v", rc)
	}
	ctx := e.browser()
	e.websiteLogin(ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "logged-in")
	if got := e.chatUsername(ctx); got != "alice" {
		t.Fatalf("chat logged in as %q, want alice", got)
	}
	u, ok := e.emu.UserByUsername("alice")
	if !ok || u.Name != "Alice Example" || len(u.Emails) != 1 || u.Emails[0].Address != "alice@example.test" {
		t.Fatalf("Rocket.Chat user: %+v (found %v)", u, ok)
	}
	if id := e.emu.OAuthID(u.ID, "rcsso"); id != "local:alice" {
		t.Fatalf("services.rcsso.id = %q, want local:alice", id)
	}
	st := e.stats()
	if st.LoginCalls != 1 || st.CreateTokenCalls != 0 || st.UsersCreateCalls != 0 || st.UsersInfoCalls != 0 {
		t.Fatalf("Rocket.Chat calls: %+v; want one /login and no admin calls", st)
	}

	// A new page view reuses the cached token: no second login.
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "logged-in")
	if st := e.stats(); st.LoginCalls != 1 {
		t.Fatalf("/login calls after a reload: %d, want 1", st.LoginCalls)
	}
}

// The "Log in with <website>" button path: Rocket.Chat sends the browser to
// rcsso's authorize route; a visitor without a website session logs in on
// rcsso's login page, comes back and is redirected to Rocket.Chat's
// callback with a code that Rocket.Chat's server exchanges for an access
// token.
func TestOAuthAuthorizeThroughLoginPage(t *testing.T) {
	e := newEnv(t, envOptions{minting: "oauth"})
	callback := e.rcURL + "/_oauth/rcsso"
	authorize := e.ssoURL + "/oauth/authorize?" + url.Values{"client_id": {"rocketchat"}, "redirect_uri": {callback},
		"response_type": {"code"}, "state": {"c3RhdGUtMQ=="}, "scope": {"openid"}}.Encode()
	ctx := e.browser()
	err := chromedp.Do(ctx,
		chromedp.Navigate(authorize),
		chromedp.WaitVisible("#username"),
		chromedp.SetValue("#username", "alice"),
		chromedp.SetValue("#password", e.password),
		chromedp.Click("#login-submit"),
	)
	if err != nil {
		t.Fatalf("login page: %v", err)
	}
	e.waitEval(ctx, `location.pathname === "/_oauth/rcsso"`)
	loc, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(loc)
	if !strings.HasPrefix(loc, callback+"?") || u.Query().Get("state") != "c3RhdGUtMQ==" || u.Query().Get("code") == "" {
		t.Fatalf("landed on %s", loc)
	}

	// Rocket.Chat's server side of the exchange (client_secret_basic), then
	// the identity call.
	form := url.Values{"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")}, "redirect_uri": {callback}, "state": {"x"}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, e.ssoURL+"/oauth/token", strings.NewReader(form.Encode()))
	req.URL.Host = e.app.Config.Listen // sso.example.test resolves only inside Chromium
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("rocketchat", oauthClientSecret)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	getJSON(t, req, &tok)
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+e.app.Config.Listen+"/oauth/identity", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	var who map[string]any
	getJSON(t, req, &who)
	if who["id"] != "local:alice" || who["username"] != "alice" || who["email"] != "alice@example.test" {
		t.Fatalf("identity = %v", who)
	}
}

func getJSON(t *testing.T, req *http.Request, out any) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s", req.Method, req.URL.Path, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}
