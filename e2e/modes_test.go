package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"
)

// Every minting mode, in the browser: the API URL logs the chat in; a
// logout in the chat is not undone; a website logout ends the chat session.
func TestMintingModes(t *testing.T) {
	for _, mode := range []string{"create-token", "password", "oauth", "mongo-resume"} {
		t.Run(mode, func(t *testing.T) {
			m := mode
			if m == "create-token" {
				m = ""
			}
			e := newEnv(t, envOptions{minting: m})
			ctx := e.browser()
			e.websiteLogin(ctx)
			if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
				t.Fatal(err)
			}
			e.waitChat(ctx, "logged-in")
			if got := e.chatUsername(ctx); got != "alice" {
				t.Fatalf("logged in as %q", got)
			}
			// Logout in the chat: Rocket.Chat asks the API URL again at once;
			// rcsso does not log alice straight back in.
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#rc-logout"))); err != nil {
				t.Fatal(err)
			}
			e.waitChat(ctx, "iframe")
			if err := e.iframeWaitText(ctx, "#rc-login-iframe", "h1", "You logged out of the chat"); err != nil {
				t.Fatal(err)
			}
			// She asks for the chat again, then logs out on the website.
			e.clickInIframe(ctx, "#rc-login-iframe", "#resume-submit")
			e.waitChat(ctx, "logged-in")
			e.websiteLogout(ctx)
			if u, _ := e.emu.UserByUsername("alice"); u.ResumeTokens != 0 {
				t.Fatalf("Rocket.Chat still holds %d tokens after the website logout", u.ResumeTokens)
			}
			if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
				t.Fatal(err)
			}
			e.waitChat(ctx, "iframe")
		})
	}
}

// Minting mode mongo-iframe: the API URL answers {"token"} (an iframe
// token in services.iframe.token) and Rocket.Chat's web client logs in
// with it. (A chat-side logout cannot be told from rcsso's side in this
// mode: Rocket.Chat keeps the iframe token; see README.)
func TestMongoIframeMode(t *testing.T) {
	e := newEnv(t, envOptions{minting: "mongo-iframe"})
	ctx := e.browser()
	e.websiteLogin(ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "logged-in")
	u, ok := e.emu.UserByUsername("alice")
	if !ok || u.IframeToken == "" || u.Email2FA {
		t.Fatalf("Rocket.Chat user %+v (found %v)", u, ok)
	}
	if st := e.stats(); st.UsersCreateCalls != 0 || st.CreateTokenCalls != 0 {
		t.Fatalf("REST admin calls in a MongoDB mode: %+v", st)
	}
	// A website logout ends the chat session too.
	e.websiteLogout(ctx)
	if u, _ := e.emu.UserByUsername("alice"); u.IframeToken != "" || u.ResumeTokens != 0 {
		t.Fatalf("after the website logout: iframe token %q, %d resume tokens", u.IframeToken, u.ResumeTokens)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
}

// Minting mode mongo-iframe through the IFrame URL: the login page hands
// the iframe token over as {event: 'login-with-token', token} (not as a
// resume loginToken, which Rocket.Chat would refuse).
func TestMongoIframeModeIframeURLLogin(t *testing.T) {
	e := newEnv(t, envOptions{minting: "mongo-iframe"})
	ctx := e.browser()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	e.loginInIframe(ctx, "alice", e.password)
	e.waitChat(ctx, "logged-in")
	if got := e.chatUsername(ctx); got != "alice" {
		t.Fatalf("chat logged in as %q", got)
	}
}
