package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/testing/samltest"
)

// samlJane is the IdP's account: NameID jane.doe@example.com (emailAddress),
// uid jane.doe, cn Jane Doe, two groups.
var samlJane = samltest.User{Name: "jane.doe", Password: "jane-password", Email: "jane.doe@example.com", CommonName: "Jane Doe",
	Groups: []string{"staff", "chat users"}}

// samlEnv starts a test IdP on idp.example.test (the same site as rcsso: the
// e2e harness serves plain http, where a SameSite=None cookie cannot be
// set) and rcsso with a saml source "corp" (IdP-initiated logins allowed)
// and the local source, and registers each at the other.
func samlEnv(t *testing.T) (*env, *samltest.IdP) {
	t.Helper()
	idp := samltest.Start(t, "idp.example.test")
	e := newEnv(t, envOptions{identity: []config.IdentitySource{samlSource(t, idp), {Type: "local"}}})
	registerSAML(t, e, idp)
	return e, idp
}

// samlSource is the identity source "corp" for idp, with Jane as its user.
func samlSource(t *testing.T, idp *samltest.IdP) config.IdentitySource {
	t.Helper()
	idp.AddUser(t, samlJane)
	sp := samltest.Keys(t, "test-sp")
	dir := t.TempDir()
	keyFile, certFile := filepath.Join(dir, "sp.key"), filepath.Join(dir, "sp.crt")
	if err := os.WriteFile(keyFile, sp.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, sp.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return config.IdentitySource{Type: "saml", Name: "corp", Options: map[string]any{
		"label":            "Log in with Example Corp",
		"idp_metadata_url": idp.MetadataURL(),
		"key_file":         keyFile, "certificate_file": certFile,
		"name_id_format":      "email",
		"allow_idp_initiated": true,
		"email_verified":      true,
		"claims":              map[string]any{"name": "cn", "groups": "eduPersonAffiliation"},
	}}
}

// registerSAML gives idp rcsso's SP metadata and a shortcut (IdP-initiated
// login) to Rocket.Chat.
func registerSAML(t *testing.T, e *env, idp *samltest.IdP) {
	t.Helper()
	rec := httptest.NewRecorder()
	e.app.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, e.ssoURL+"/auth/corp/metadata", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("SP metadata: %d", rec.Code)
	}
	idp.AddServiceProvider(t, "rcsso", rec.Body.Bytes())
	idp.AddShortcut(t, "rcsso", e.ssoURL+"/auth/corp/metadata", e.rcURL+"/")
}

// idpLogin fills the test IdP's login form in the tab ctx as Jane.
func (e *env) idpLogin(ctx context.Context) {
	e.t.Helper()
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS("#user")),
		chromedp.SendKeys(chromedp.CSS("#user"), samlJane.Name),
		chromedp.SendKeys(chromedp.CSS("#password"), samlJane.Password),
		chromedp.Click(chromedp.CSS("#samltest-submit")),
	)
	if err != nil {
		e.t.Fatalf("filling the IdP's login form: %v", err)
	}
}

// The IFrame URL offers the SAML source; its SP-initiated login runs in a
// popup opened from inside the chat's iframe (the IdP's login page), and the
// chat logs in as the mapped user when the popup is done. The IdP's single
// logout then ends the website session and the Rocket.Chat session.
func TestSAMLPopupLoginAndSingleLogout(t *testing.T) {
	e, idp := samlEnv(t)
	ctx := e.browser()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	if label, err := e.iframeText(ctx, "#rc-login-iframe", "#login-corp"); err != nil || !strings.Contains(label, "Log in with Example Corp") {
		t.Fatalf("IFrame URL button %q (%v)", label, err)
	}
	e.clickInIframe(ctx, "#rc-login-iframe", "#login-corp") // opens the IdP in a popup
	popup := e.attach(ctx, "page", idp.URL)
	e.idpLogin(popup)
	e.waitChat(ctx, "logged-in")
	if got := e.chatUsername(ctx); got != "jane.doe" {
		t.Fatalf("chat logged in as %q", got)
	}
	u, ok := e.emu.UserByUsername("jane.doe")
	if !ok || u.ResumeTokens != 1 || u.Name != "Jane Doe" || len(u.Emails) != 1 || u.Emails[0].Address != "jane.doe@example.com" {
		t.Fatalf("Rocket.Chat user %+v", u)
	}

	// The person logs out at the IdP, which logs them out of rcsso through
	// the browser (a signed LogoutRequest, HTTP-Redirect) and gets rcsso's
	// signed LogoutResponse back.
	if err := chromedp.Do(ctx, chromedp.Navigate(idp.URL+"/logout")); err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx, `document.body && document.body.textContent.includes("You have been logged out")`)
	if body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.textContent`)); err != nil || strings.Contains(body, "could not be confirmed") {
		t.Fatalf("IdP logout page %q (%v)", body, err)
	}
	if u, _ := e.emu.UserByUsername("jane.doe"); u.ResumeTokens != 0 {
		t.Fatalf("Rocket.Chat session survived the single logout (%d tokens)", u.ResumeTokens)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
}

// An IdP-initiated login (the IdP's link for rcsso) lands on Rocket.Chat,
// which finds the new website session through the API URL.
func TestSAMLIdPInitiatedLogin(t *testing.T) {
	e, idp := samlEnv(t)
	ctx := e.browser()
	if err := chromedp.Do(ctx, chromedp.Navigate(idp.URL+"/login/rcsso")); err != nil {
		t.Fatal(err)
	}
	e.idpLogin(ctx)
	e.waitEval(ctx, `location.origin === `+jsString(e.rcURL))
	e.waitChat(ctx, "logged-in")
	if got := e.chatUsername(ctx); got != "jane.doe" {
		t.Fatalf("chat logged in as %q", got)
	}
}

// Over HTTPS with the IdP on another site (idp.other.test) and third-party
// cookies blocked, as in production: the IdP's POST to the ACS is
// cross-site, so rcsso's login state cookie must be SameSite=None to come
// back with it; the popup's login then logs the chat in.
func TestSAMLCrossSiteIdPOverHTTPS(t *testing.T) {
	idp := samltest.StartTLS(t, "idp.other.test")
	src := samlSource(t, idp)
	src.Options["allow_idp_initiated"] = false
	e := newTLSEnv(t, tlsOptions{chatHost: "chat.example.test", identity: []config.IdentitySource{src, {Type: "local"}}})
	registerSAML(t, e, idp)
	ctx := newChromium(t, false)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	e.clickInIframe(ctx, "#rc-login-iframe", "#login-corp")
	e.idpLogin(e.attach(ctx, "page", idp.URL))
	e.waitChat(ctx, "logged-in")
	if got := e.chatUsername(ctx); got != "jane.doe" {
		t.Fatalf("chat logged in as %q", got)
	}
}
