package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rcsso/rcsso/internal/config"
)

// Issue 12, access policy, in the browser: alice is logged in on the
// website, but the local source's policy gives the chat only to the group
// staff. The chat's API URL call is refused (403), Rocket.Chat shows the
// IFrame URL, and the IFrame URL says why; no Rocket.Chat account is made.
func TestAccessDeniedInChat(t *testing.T) {
	e := newEnv(t, envOptions{identity: []config.IdentitySource{{Type: "local", Allow: config.SourceAllow{Groups: []string{"staff"}}}}})
	ctx := e.browser()
	e.websiteLogin(ctx)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(900, 600), chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	if err := e.iframeWaitText(ctx, "#rc-login-iframe", "h1", "No access to the chat"); err != nil {
		t.Fatal(err)
	}
	// The person was recognised: no "your browser keeps the login away"
	// prompt (it showed before, under the refusal).
	if v, err := e.iframeEval(ctx, "#rc-login-iframe", `document.readyState === "complete" && String(document.getElementById("storage-access-box").hidden)`); err != nil || v != "true" {
		t.Fatalf("storage-access prompt hidden: %q, %v", v, err)
	}
	e.screenshot(ctx, "access-denied.png")
	if _, ok := e.emu.UserByUsername("alice"); ok {
		t.Fatal("alice got a Rocket.Chat account")
	}
}
