package e2e

import (
	"log/slog"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/app"
	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity/local"
	"github.com/rcsso/rcsso/internal/rcemu"
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
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	emuMux, ssoMux := &lateHandler{}, &lateHandler{}
	rcURL := "https://chat.other.test:" + tlsServe(t, emuMux)
	ssoURL := "https://sso.example.test:" + tlsServe(t, ssoMux)
	rcPlain := listen(t)
	ecfg := rcemu.Config{AdminPassword: "pw", AdminPAT: "pat", CreateTokensSecret: "s", BcryptCost: bcrypt.MinCost, Logger: log}
	ecfg.EnableIframeAuth(ssoURL+"/login", ssoURL+"/api/rocketchat/token", "POST")
	emu, err := rcemu.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	emuMux.set(emu.Handler())
	serve(t, rcPlain, emu.Handler())
	cfg := config.Default()
	cfg.PublicURL, cfg.RocketChat.URL, cfg.RocketChat.APIURL = ssoURL, rcURL, "http://"+rcPlain.Addr().String()
	cfg.RocketChat.AdminUserID, cfg.RocketChat.AdminToken, cfg.RocketChat.CreateTokensSecret = emu.AdminID(), "pat", "s"
	cfg.Store = config.Store{Type: "memory"}
	cfg.Session.StorageAccessHeaders = headers
	a, err := app.Build(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	ssoMux.set(a.Handler)
	acct, _ := local.NewAccount("alice", "correct-horse-battery", "Alice", "alice@example.test", time.Now())
	_ = a.Store.CreateAccount(t.Context(), acct)
	e := &env{t: t, emu: emu, app: a, rcURL: rcURL, ssoURL: ssoURL, password: "correct-horse-battery"}

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
		e.clickInCrossSiteIframe(ctx, ssoURL+"/login", "#storage-access")
		e.waitChat(ctx, "logged-in")
	}
	if u, _ := e.emu.UserByUsername("alice"); u.ResumeTokens != 1 {
		t.Fatalf("tokens %d", u.ResumeTokens)
	}
}
