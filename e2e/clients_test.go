package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// recordMessages makes every new document record the message events it
// receives in window.__msgs (origin and data).
const recordMessages = `window.__msgs = []; window.addEventListener("message", function (e) { window.__msgs.push({origin: e.origin, data: e.data}); });`

// The IFrame URL opened top-level (a person who opens it in a tab; no
// Rocket.Chat client does, see mobile_test.go) has no Rocket.Chat window to
// hand the token to: it posts nothing and says the person is signed in.
func TestIframeURLTopLevel(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := e.browser()
	e.websiteLogin(ctx)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordMessages}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.ssoURL+"/login")); err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx, `document.readyState === "complete" && document.getElementById("status").textContent.includes("signed in")`)
	// login.js runs before the load event; a message it posted would have
	// been delivered by the time a later task runs.
	got, err := chromedp.Run(ctx, chromedp.Evaluate[int](`new Promise(r => setTimeout(() => r(window.__msgs.length), 0))`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if got != 0 {
		t.Fatalf("the top-level IFrame URL posted %d messages", got)
	}
	status, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#status")))
	if status != "You are signed in. You can go back to the chat." {
		t.Fatalf("status text %q", status)
	}
}

// Rocket.Chat's desktop app (Electron) keeps Electron's user agent; every
// web client generation then adds client=electron to the IFrame URL (5.x
// IframeLogin, 7.x useIframe, 8.x useIframe); the login inside it works the
// same way.
func TestIframeURLElectron(t *testing.T) {
	for _, profile := range []string{"5.x", "7.x", "8.x"} {
		t.Run(profile, func(t *testing.T) { testIframeURLElectron(t, profile) })
	}
}

func testIframeURLElectron(t *testing.T, profile string) {
	e := newEnv(t, envOptions{profile: profile})
	ctx := e.browser()
	ua := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Rocket.Chat/4.1.0 Chrome/130.0 Electron/33.0.0 Safari/537.36"
	if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	src, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("rc-login-iframe").src`))
	if err != nil || !strings.HasSuffix(src, "/login?client=electron") {
		t.Fatalf("iframe src %q, %v", src, err)
	}
	e.loginInIframe(ctx, "alice", e.password)
	e.waitChat(ctx, "logged-in")
}

// Logging out on the website ends the chat session too: Rocket.Chat no
// longer accepts the token, and the chat does not sign straight back in.
func TestWebsiteLogoutEndsChatSession(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := e.browser()
	e.websiteLogin(ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "logged-in")
	e.websiteLogout(ctx)
	if u, _ := e.emu.UserByUsername("alice"); u.ResumeTokens != 0 {
		t.Fatalf("Rocket.Chat still holds %d tokens for alice after logout", u.ResumeTokens)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
}

// Logging out in the chat must not log the person straight back in through
// the API URL (protocol spec §1.7): the IFrame URL says so and offers to log
// in to the chat again.
func TestChatLogoutIsNotUndone(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := e.browser()
	e.websiteLogin(ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "logged-in")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#rc-logout"))); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	if err := e.iframeWaitText(ctx, "#rc-login-iframe", "h1", "You logged out of the chat"); err != nil {
		t.Fatal(err)
	}
	// A reload of the chat still does not log back in.
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	if u, _ := e.emu.UserByUsername("alice"); u.ResumeTokens != 0 {
		t.Fatalf("a token was minted after the chat logout: %d", u.ResumeTokens)
	}
	// The person asks for the chat again.
	e.clickInIframe(ctx, "#rc-login-iframe", "#resume-submit")
	e.waitChat(ctx, "logged-in")
}

// The IFrame URL's last fallback: "Log in in a new window" opens rcsso's
// login top-level in a popup; when it is done the chat signs in.
func TestLoginInNewWindow(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := e.browser()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	if _, err := e.iframeEval(ctx, "#rc-login-iframe", `document.readyState === "complete" && !document.getElementById("login-window-box").hidden && "ready"`); err != nil {
		t.Fatal(err)
	}
	e.clickInIframe(ctx, "#rc-login-iframe", "#login-window")
	// The popup is a new top-level page on rcsso's origin.
	e.fillLogin(e.attach(ctx, "page", e.ssoURL+"/login?return_to="))
	e.waitChat(ctx, "logged-in")
}
