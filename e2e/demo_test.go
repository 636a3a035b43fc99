package e2e

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rcsso/rcsso/internal/demo"
)

// TestDemo walks README's first command: open the demo website, log in on
// it, open the chat page: the embedded chat is signed in as the demo user.
func TestDemo(t *testing.T) {
	r, err := demo.Start(t.Context(), demo.Options{SiteAddr: "127.0.0.1:0", RcssoAddr: "127.0.0.1:0", RocketChatAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	if !strings.Contains(r.Banner(), r.SiteURL) || !strings.Contains(r.Banner(), r.Password) {
		t.Fatalf("banner lacks the URL or the credentials:\n%s", r.Banner())
	}
	e := &env{t: t}
	ctx := e.browser()
	err = chromedp.Do(ctx,
		chromedp.Navigate(r.SiteURL+"/"),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), r.Username),
		chromedp.SendKeys(chromedp.CSS("#password"), r.Password+"\r"),
	)
	if err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx, `location.href === `+jsString(r.SiteURL+"/"))
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#nav-chat"))); err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx, `location.pathname === "/chat"`)
	if err := e.iframeWaitText(ctx, "#chat", "#rc-status", "logged-in"); err != nil {
		t.Fatalf("the embedded chat did not sign in: %v", err)
	}
	if name, _ := e.iframeText(ctx, "#chat", "#rc-username"); name != r.Username {
		t.Fatalf("chat signed in as %q", name)
	}
	// The host push page, in a browser whose Rocket.Chat storage is fresh:
	// embed.js pushes the token.
	ctx2 := e.browser()
	err = chromedp.Do(ctx2,
		chromedp.Navigate(r.SiteURL+"/"),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), r.Username),
		chromedp.SendKeys(chromedp.CSS("#password"), r.Password+"\r"),
	)
	if err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx2, `location.href === `+jsString(r.SiteURL+"/"))
	if err := chromedp.Do(ctx2, chromedp.Navigate(r.SiteURL+"/embed")); err != nil {
		t.Fatal(err)
	}
	if err := e.iframeWaitText(ctx2, "#chat iframe", "#rc-status", "logged-in"); err != nil {
		t.Fatalf("the host push page did not sign in: %v", err)
	}
}

func jsString(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
