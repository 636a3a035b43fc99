package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity/oauth2/oauth2test"
)

// githubSource is an oauth2 source with the github preset pointed at the
// fake provider p.
func githubSource(name string, p *oauth2test.Provider) config.IdentitySource {
	return config.IdentitySource{Type: "oauth2", Name: name, Options: map[string]any{
		"preset": "github", "auth_url": p.AuthURL(), "token_url": p.TokenURL(), "userinfo_url": p.UserinfoURL(),
		"client_id": p.ClientID, "client_secret": p.ClientSecret}}
}

// The IFrame URL inside Rocket.Chat offers the OAuth 2.0 provider; the
// person clicks it, authorizes rcsso on the provider's page in the popup,
// and the chat logs in as the mapped user. A first try, while the
// provider's API fails, ends in the popup on a page that says so, and the
// chat stays at the login.
func TestOAuth2PopupLogin(t *testing.T) {
	p := oauth2test.New(t)
	p.Consent(true)
	e := newEnv(t, envOptions{identity: []config.IdentitySource{githubSource("github", p), {Type: "local"}}})
	ctx := e.browser()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	if label, err := e.iframeText(ctx, "#rc-login-iframe", "#login-github"); err != nil || label != "Log in with GitHub" {
		t.Fatalf("button label %q, %v", label, err)
	}

	p.Handle("/user", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "unicorn", http.StatusInternalServerError) })
	e.clickInIframe(ctx, "#rc-login-iframe", "#login-github")
	popup := e.attach(ctx, "page", p.URL)
	if err := chromedp.Do(popup, chromedp.WaitVisible(chromedp.CSS("#authorize")), chromedp.Click(chromedp.CSS("#authorize"))); err != nil {
		t.Fatal(err)
	}
	e.waitEval(popup, `document.body && document.body.textContent.includes("GitHub had a problem answering rcsso (error 500)")`)
	if s := e.chatStatus(ctx); s != "iframe" {
		t.Fatalf("chat %q after a failed login", s)
	}

	p.SetJSON("/user", map[string]any{"id": 4242, "login": "octo", "name": "Octo Cat", "email": nil})
	e.clickInIframe(ctx, "#rc-login-iframe", "#login-github") // the popup window is reused
	if err := chromedp.Do(popup, chromedp.WaitVisible(chromedp.CSS("#authorize")), chromedp.Click(chromedp.CSS("#authorize"))); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "logged-in")
	if got := e.chatUsername(ctx); got != "octo" {
		t.Fatalf("chat logged in as %q", got)
	}
	u, ok := e.emu.UserByUsername("octo")
	if !ok || u.ResumeTokens != 1 || len(u.Emails) != 1 || u.Emails[0].Address != "octo@example.test" || u.Name != "Octo Cat" {
		t.Fatalf("Rocket.Chat user %+v", u)
	}
}

// With several interactive sources (OIDC, two OAuth 2.0 providers and the
// local form), the IFrame URL shows one button per source, each with its
// label, and each button logs in through its own provider.
func TestIFrameURLButtonPerSource(t *testing.T) {
	m := startOIDCProvider(t)
	gh := oauth2test.New(t)
	dc := oauth2test.New(t)
	dc.SetJSON("/api/v10/users/@me", map[string]any{"id": "80351110224678912", "username": "nelly", "global_name": "Nelly",
		"avatar": nil, "email": "nelly@discord.test", "verified": true})
	e := newEnv(t, envOptions{identity: []config.IdentitySource{
		{Type: "oidc", Name: "idp", Options: map[string]any{"label": "Log in with Example ID", "issuer": m.Issuer(), "client_id": m.ClientID, "client_secret": m.ClientSecret}},
		githubSource("github", gh),
		{Type: "oauth2", Name: "discord", Options: map[string]any{"preset": "discord", "auth_url": dc.AuthURL(), "token_url": dc.TokenURL(),
			"userinfo_url": dc.URL + "/api/v10/users/@me", "client_id": dc.ClientID, "client_secret": dc.ClientSecret}},
		{Type: "local"},
	}})
	ctx := e.browser()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(900, 700), chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	buttons, err := e.iframeEval(ctx, "#rc-login-iframe", `document.readyState === "complete" && JSON.stringify(Array.from(document.querySelectorAll("a[data-sso]:not(#login-window)"), a => a.id + "=" + a.textContent))`)
	if err != nil {
		t.Fatal(err)
	}
	if want := `["login-idp=Log in with Example ID","login-github=Log in with GitHub","login-discord=Log in with Discord"]`; buttons != want {
		t.Fatalf("buttons %s, want %s", buttons, want)
	}
	if n, err := e.iframeEval(ctx, "#rc-login-iframe", `document.querySelectorAll("#login-form").length === 1 && "form"`); err != nil || n != "form" {
		t.Fatalf("local login form: %q, %v", n, err)
	}
	screenshot(t, ctx, "iframe-url-sources.png")

	e.clickInIframe(ctx, "#rc-login-iframe", "#login-discord")
	e.waitChat(ctx, "logged-in")
	if got := e.chatUsername(ctx); got != "nelly" {
		t.Fatalf("chat logged in as %q", got)
	}
	if u, ok := e.emu.UserByUsername("nelly"); !ok || u.Name != "Nelly" || u.Emails[0].Address != "nelly@discord.test" {
		t.Fatalf("Rocket.Chat user %+v", u)
	}
	if gh.Hits(oauth2test.AuthorizePath) != 0 || dc.Hits(oauth2test.TokenPath) != 1 {
		t.Fatalf("GitHub authorize %d, Discord token %d", gh.Hits(oauth2test.AuthorizePath), dc.Hits(oauth2test.TokenPath))
	}
}

// screenshot saves the page into $E2E_SCREENSHOTS when that names a
// directory.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("E2E_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, strings.ReplaceAll(name, "/", "_")), png, 0o644); err != nil {
		t.Errorf("screenshot: %v", err)
	}
}

// In the mobile app's WebView the button takes the whole WebView through
// the provider (no pop-up) and back to the workspace, where the IFrame URL
// hands the token over, as for OIDC (TestMobileAppOIDC).
func TestMobileAppOAuth2(t *testing.T) {
	p := oauth2test.New(t)
	e := newEnv(t, envOptions{identity: []config.IdentitySource{githubSource("github", p), {Type: "local"}}})
	m := newMobileApp(e)
	m.ios = true
	webview := e.browser()
	m.login(webview)
	e.waitChat(webview, "iframe")
	e.clickInIframe(webview, "#rc-login-iframe", "#login-github")
	s := m.waitLogin()
	checkMobileLogin(e, m, s, "octo")
	if got := p.LastAuthorize().Get("redirect_uri"); got != e.ssoURL+"/auth/github/callback" {
		t.Fatalf("redirect_uri %q", got)
	}
}
