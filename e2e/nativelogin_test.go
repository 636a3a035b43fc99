package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rcsso/rcsso/internal/rcemu"
)

// inIframe waits until the document in the chat's login iframe satisfies
// ready (a JS expression), then runs actions on that document.
func (e *env) inIframe(ctx context.Context, ready string, actions func(in chromedp.QueryOption) []chromedp.Action[chromedp.Void]) {
	e.t.Helper()
	if _, err := e.iframeEval(ctx, "#rc-login-iframe", `document.readyState === "complete" && (`+ready+`) && "ready"`); err != nil {
		e.t.Fatalf("waiting in the login iframe for %s: %v", ready, err)
	}
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS("#rc-login-iframe")))
	if err != nil || len(nodes) == 0 {
		e.t.Fatalf("no login iframe: %v", err)
	}
	if err := chromedp.Do(ctx, actions(chromedp.FromNode(nodes[0]))...); err != nil {
		e.t.Fatalf("in the login iframe: %v", err)
	}
}

// shot saves a screenshot of the whole chat page into $E2E_SCREENSHOTS
// when that names a directory.
func (e *env) shot(ctx context.Context, name string) {
	dir := os.Getenv("E2E_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, name), png, 0o644)
	}
	if err != nil {
		e.t.Errorf("screenshot %s: %v", name, err)
	}
}

// An admin with no website account opens the chat, expands "Log in with a
// Rocket.Chat account" on the IFrame URL inside it, logs in with their own
// Rocket.Chat password and then their 2FA code, and the chat logs in as
// that admin: rcsso mints nothing and starts no website session.
func TestNativeLoginAdminIntoChat(t *testing.T) {
	for _, method := range []string{"totp", "email"} {
		t.Run(method, func(t *testing.T) {
			e := newEnv(t, envOptions{nativeLogin: true, twoFactor: true})
			var secret string
			switch method {
			case "totp":
				var err error
				if secret, err = e.emu.EnableTOTP(e.emu.AdminID()); err != nil {
					t.Fatal(err)
				}
			case "email":
				if err := e.emu.SetEmail2FA(e.emu.AdminID(), true); err != nil {
					t.Fatal(err)
				}
			}
			ctx := e.browser()
			if err := chromedp.Do(ctx, chromedp.EmulateViewport(900, 760), chromedp.Navigate(e.rcURL+"/")); err != nil {
				t.Fatal(err)
			}
			e.waitChat(ctx, "iframe")

			// The section is collapsed; open it and log in.
			e.inIframe(ctx, `!!document.getElementById("native-login") && !document.getElementById("native-login").open`,
				func(chromedp.QueryOption) []chromedp.Action[chromedp.Void] { return nil })
			e.shot(ctx, "native-login-"+method+"-collapsed.png")
			e.inIframe(ctx, `true`,
				func(in chromedp.QueryOption) []chromedp.Action[chromedp.Void] {
					return []chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS("#native-login-toggle"), in),
						chromedp.WaitVisible(chromedp.CSS("#native-username"), in)}
				})
			e.shot(ctx, "native-login-"+method+"-form.png")
			e.inIframe(ctx, `true`, func(in chromedp.QueryOption) []chromedp.Action[chromedp.Void] {
				return []chromedp.Action[chromedp.Void]{
					chromedp.SendKeys(chromedp.CSS("#native-username"), "admin", in),
					chromedp.SendKeys(chromedp.CSS("#native-password"), "admin-password\r", in),
				}
			})

			// Second step: the code, with the password again.
			e.inIframe(ctx, `!!document.getElementById("native-code")`, func(chromedp.QueryOption) []chromedp.Action[chromedp.Void] { return nil })
			notice, _ := e.iframeText(ctx, "#rc-login-iframe", "#native-notice")
			var code string
			switch method {
			case "totp":
				code, _ = rcemu.TOTPCode(secret, time.Now())
			case "email":
				var ok bool
				if code, ok = e.emu.LastEmailCode("admin@rcemu.invalid"); !ok {
					t.Fatal("Rocket.Chat mailed no code")
				}
				code = code[:3] + "-" + code[3:] // as the e-mail shows it
			}
			e.shot(ctx, "native-login-"+method+"-code.png")
			e.inIframe(ctx, `true`, func(in chromedp.QueryOption) []chromedp.Action[chromedp.Void] {
				return []chromedp.Action[chromedp.Void]{
					chromedp.SendKeys(chromedp.CSS("#native-password"), "admin-password", in),
					chromedp.SendKeys(chromedp.CSS("#native-code"), code+"\r", in),
				}
			})
			e.waitChat(ctx, "logged-in")
			if got := e.chatUsername(ctx); got != "admin" {
				t.Fatalf("chat logged in as %q, want admin (notice was %q)", got, notice)
			}
			if m := e.app.Broker.Stats().Minted; m != 0 {
				t.Fatalf("the broker minted %d tokens", m)
			}
			if st := e.stats(); st.CreateTokenCalls != 0 || st.UsersCreateCalls != 0 {
				t.Fatalf("rcsso provisioned or minted: %+v", st)
			}
			// No website session: the API URL still says 401 for this browser.
			status, err := chromedp.Run(ctx, chromedp.Evaluate[float64](fmt.Sprintf(
				`fetch(%q, {method: "POST", credentials: "include"}).then(r => r.status)`, e.ssoURL+"/api/rocketchat/token"),
				chromedp.EvalAwaitPromise))
			if err != nil || status != 401 {
				t.Fatalf("API URL after a native login: %v, %v", status, err)
			}
		})
	}
}
