package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rcsso/rcsso/internal/demo"
)

// startDemo starts `rcsso demo` on free loopback ports.
func startDemo(t *testing.T) *demo.Running {
	t.Helper()
	r, err := demo.Start(t.Context(), demo.Options{SiteAddr: "127.0.0.1:0", RcssoAddr: "127.0.0.1:0", RocketChatAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	return r
}

// demoLogin logs in on the demo website from its home page and waits until
// the browser is back there.
func (e *env) demoLogin(ctx context.Context, r *demo.Running) {
	e.t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(r.SiteURL+"/"),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), r.Username),
		chromedp.SendKeys(chromedp.CSS("#password"), r.Password+"\r"),
	)
	if err != nil {
		e.t.Fatal(err)
	}
	e.waitEval(ctx, `location.href === `+jsString(r.SiteURL+"/"))
}

// TestDemo walks README's first command: open the demo website, log in on
// it, open the chat page: the embedded chat is signed in as the demo user.
func TestDemo(t *testing.T) {
	r := startDemo(t)
	if !strings.Contains(r.Banner(), r.SiteURL) || !strings.Contains(r.Banner(), r.Password) {
		t.Fatalf("banner lacks the URL or the credentials:\n%s", r.Banner())
	}
	e := &env{t: t}
	ctx := e.browser()
	e.demoLogin(ctx, r)
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
	e.demoLogin(ctx2, r)
	if err := chromedp.Do(ctx2, chromedp.Navigate(r.SiteURL+"/embed")); err != nil {
		t.Fatal(err)
	}
	if err := e.iframeWaitText(ctx2, "#chat iframe", "#rc-status", "logged-in"); err != nil {
		t.Fatalf("the host push page did not sign in: %v", err)
	}
}

// TestDemoFirstVisit walks the demo as a first-time user does, at a laptop's
// window size: the home page's buttons, logging in and seeing one's name,
// the chat with its rooms, a message sent to #general that is still there
// after a reload, and "Log out" taking the person back to a logged-out home
// page. With E2E_SCREENSHOTS=DIR it saves a screenshot of each step there
// (demo-1-home.png … demo-5-logged-out.png).
func TestDemoFirstVisit(t *testing.T) {
	r := startDemo(t)
	e := &env{t: t}
	ctx := e.browser()
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(r.SiteURL+"/")); err != nil {
		t.Fatal(err)
	}

	// 1. The home page, logged out: says so, and its buttons do not overlap.
	e.waitEval(ctx, `document.readyState === "complete"`)
	e.screenshot(ctx, "demo-1-home.png")
	if who := e.text(ctx, "#who"); !strings.Contains(who, "Not logged in") {
		t.Errorf("logged-out home page: #who = %q, want it to say Not logged in", who)
	}
	if overlap, _ := chromedp.Run(ctx, chromedp.Evaluate[string](overlappingButtons)); overlap != "" {
		t.Errorf("home page buttons overlap: %s", overlap)
	}

	// 2. Logged in: every page says who, with a log-out button.
	e.demoLogin(ctx, r)
	e.screenshot(ctx, "demo-2-logged-in.png")
	for _, path := range []string{"/", "/chat", "/embed"} {
		if err := chromedp.Do(ctx, chromedp.Navigate(r.SiteURL+path)); err != nil {
			t.Fatal(err)
		}
		who := e.text(ctx, "#who")
		if !strings.Contains(who, "Demo Visitor") || !strings.Contains(who, "demo@example.com") {
			t.Errorf("%s: #who = %q, want the name and e-mail", path, who)
		}
		if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#logout").length`)); n != 1 {
			t.Errorf("%s: %d log-out buttons", path, n)
		}
	}

	// 3. The chat: the rooms the person joined (#general, #support,
	// #random), #general open with the welcome message, the person's name.
	if err := chromedp.Do(ctx, chromedp.Navigate(r.SiteURL+"/"), chromedp.Click(chromedp.CSS("#open-chat"))); err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx, `location.pathname === "/chat"`)
	if err := e.iframeWaitText(ctx, "#chat", "#rc-status", "logged-in"); err != nil {
		t.Fatalf("the chat did not sign in: %v", err)
	}
	if err := e.iframeWaitText(ctx, "#chat", "#rc-room-title", "#general"); err != nil {
		t.Fatalf("the chat does not show #general: %v", err)
	}
	if _, err := e.iframeEval(ctx, "#chat", `[...document.querySelectorAll("#rc-rooms a")].map(a => a.textContent.trim()).join(",") === "#general,#support,#random" && "rooms"`); err != nil {
		rooms, _ := e.iframeText(ctx, "#chat", "#rc-rooms")
		t.Errorf("room list %q, want #general, #support, #random: %v", rooms, err)
	}
	if _, err := e.iframeEval(ctx, "#chat", `[...document.querySelectorAll("#rc-messages .rc-msg-text")].some(m => m.textContent.startsWith("Welcome to Example Corp's chat!")) && "welcome"`); err != nil {
		t.Errorf("#general lacks the welcome message: %v", err)
	}
	if _, err := e.iframeEval(ctx, "#chat", `(document.getElementById("rc-me-name")||{}).textContent === "Demo Visitor" && "name"`); err != nil {
		t.Errorf("the chat does not show the person's name: %v", err)
	}
	e.screenshot(ctx, "demo-3-chat.png")

	// 4. A message typed into #general appears, and is still there after a
	// reload (kept by the emulator, not the page).
	const msg = "Hello from a first-time user <b>not bold</b>"
	e.typeInIframe(ctx, "#chat", "#rc-message-input", msg+"\r")
	if _, err := e.iframeEval(ctx, "#chat", fmt.Sprintf(`[...document.querySelectorAll("#rc-messages .rc-msg-text")].some(m => m.textContent === %q) && "sent"`, msg)); err != nil {
		t.Fatalf("the message did not appear: %v", err)
	}
	e.screenshot(ctx, "demo-4-message.png")
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.iframeEval(ctx, "#chat", fmt.Sprintf(`[...document.querySelectorAll("#rc-messages .rc-msg-text")].some(m => m.textContent === %q) && "kept"`, msg)); err != nil {
		t.Fatalf("the message is gone after a reload: %v", err)
	}

	// 5. Log out: back on the home page, logged out.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#logout"))); err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx, `location.href === `+jsString(r.SiteURL+"/")+` && document.readyState === "complete" && !!document.getElementById("who") && document.getElementById("who").textContent.includes("Not logged in")`)
	e.screenshot(ctx, "demo-5-logged-out.png")
	if n, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#login").length`)); n == 0 {
		t.Error("no log-in button after logging out")
	}
}

// overlappingButtons names the first two buttons of the page's main part
// whose boxes intersect ("" if none).
const overlappingButtons = `(() => {
  const bs = [...document.querySelectorAll("main .button, main button")].map(b => [b.textContent.trim(), b.getBoundingClientRect()]);
  for (let i = 0; i < bs.length; i++) for (let j = i + 1; j < bs.length; j++) {
    const a = bs[i][1], b = bs[j][1];
    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) return bs[i][0] + " / " + bs[j][0];
  }
  return "";
})()`

// text returns the text of the element sel ("" if there is none).
func (e *env) text(ctx context.Context, sel string) string {
	e.t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).textContent||""`, sel)))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.Join(strings.Fields(s), " ")
}

// typeInIframe waits until sel exists in the same-site iframe frameSel's
// document, then types keys into it as a person does.
func (e *env) typeInIframe(ctx context.Context, frameSel, sel, keys string) {
	e.t.Helper()
	if _, err := e.iframeEval(ctx, frameSel, fmt.Sprintf(`document.readyState === "complete" && !!document.querySelector(%q) && "ready"`, sel)); err != nil {
		e.t.Fatal(err)
	}
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS(frameSel)))
	if err != nil || len(nodes) == 0 {
		e.t.Fatalf("no %s: %v", frameSel, err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(sel), keys, chromedp.FromNode(nodes[0]))); err != nil {
		e.t.Fatalf("typing into %s in %s: %v", sel, frameSel, err)
	}
}

func jsString(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
