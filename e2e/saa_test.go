package e2e

import (
	"testing"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// Cross-site, third-party cookies blocked, a person already logged in on
// the website (top level), the browser willing to grant storage access:
// Storage Access Headers let the API URL call retry with the cookie; without
// them, the IFrame URL's Storage Access API button gets the page the cookie
// and it hands the token over without a second login.
func TestStorageAccess(t *testing.T) {
	t.Run("storage access headers on the API URL", func(t *testing.T) { testStorageAccess(t, true) })
	t.Run("storage access button on the IFrame URL", func(t *testing.T) { testStorageAccess(t, false) })
}

func testStorageAccess(t *testing.T, headers bool) {
	e := newTLSEnv(t, tlsOptions{chatHost: "chat.other.test", storageAccessHeaders: headers})
	rcURL, ssoURL := e.rcURL, e.ssoURL

	ctx := newChromium(t, false)
	e.websiteLogin(ctx) // an unpartitioned, first-party cookie on sso.example.test
	// The person's answer to the browser's storage-access prompt: yes.
	if _, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
		Permission: &browser.PermissionDescriptor{Name: "storage-access"}, Setting: browser.PermissionSettingGranted,
		Origin: rcURL, EmbeddedOrigin: ssoURL,
	}); err != nil {
		t.Skipf("this Chromium cannot grant storage access over CDP: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx, `["logged-in", "iframe"].includes((document.getElementById("rc-status")||{}).textContent)`)
	if headers {
		// Chrome retried the API URL call with the cookie after rcsso's
		// Activate-Storage-Access: retry.
		if s := e.chatStatus(ctx); s != "logged-in" {
			t.Fatalf("with Storage Access Headers the API URL should log in; status %q", s)
		}
	} else {
		if s := e.chatStatus(ctx); s != "iframe" {
			t.Fatalf("without Storage Access Headers the API URL call has no cookie; status %q", s)
		}
		if err := chromedp.Do(e.attach(ctx, "iframe", ssoURL+"/login"), chromedp.WaitVisible(chromedp.CSS("#storage-access")), chromedp.Click(chromedp.CSS("#storage-access"))); err != nil {
			t.Fatal(err)
		}
		e.waitChat(ctx, "logged-in")
	}
	if u, _ := e.emu.UserByUsername("alice"); u.ResumeTokens != 1 {
		t.Fatalf("tokens %d", u.ResumeTokens)
	}
}
