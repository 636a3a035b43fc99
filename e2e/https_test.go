package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/app"
	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity/local"
	"github.com/rcsso/rcsso/internal/rcemu"
)

// newChromium starts a separate headless Chromium for HTTPS tests, with
// third-party cookies blocked (a fresh profile's default) or allowed.
func newChromium(t *testing.T, thirdPartyCookies bool) context.Context {
	t.Helper()
	dir := t.TempDir()
	if thirdPartyCookies {
		if err := os.MkdirAll(filepath.Join(dir, "Default"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "Default", "Preferences"), []byte(`{"profile":{"cookie_controls_mode":0}}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath()), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(dir), chromedp.IgnoreCertErrors,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("host-resolver-rules", "MAP *.test 127.0.0.1"),
	)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancel3)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// tlsServe serves h over HTTPS (httptest's certificate; Chromium runs with
// --ignore-certificate-errors) and returns the port.
func tlsServe(t *testing.T, h http.Handler) string {
	srv := httptest.NewUnstartedServer(h)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, p, _ := splitHostPort(srv.Listener.Addr().String())
	return p
}

func splitHostPort(a string) (string, string, error) {
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] == ':' {
			return a[:i], a[i+1:], nil
		}
	}
	return a, "", fmt.Errorf("no port in %q", a)
}

// TestCookieTopologies runs the API URL flow and the host push flow over
// HTTPS for same-site and cross-site deployments, with third-party cookies
// allowed and blocked. In every case the person ends up logged in through
// at least one path, and the test asserts which.
func TestCookieTopologies(t *testing.T) {
	cases := []struct {
		name       string
		chatHost   string // Rocket.Chat's host; rcsso is sso.example.test, the website www.example.test
		thirdParty bool
		apiURLWins bool // the API URL flow logs in on its own
	}{
		{"same-site, third-party cookies blocked", "chat.example.test", false, true},
		{"same-site, third-party cookies allowed", "chat.example.test", true, true},
		{"cross-site, third-party cookies allowed", "chat.other.test", true, true},
		{"cross-site, third-party cookies blocked", "chat.other.test", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
			// Listeners first: every URL must be known before configuring.
			www := &pageServer{mux: http.NewServeMux()}
			wwwURL := "https://www.example.test:" + tlsServe(t, www.mux)
			www.URL = wwwURL
			emuMux := &lateHandler{}
			rcPort := tlsServe(t, emuMux)
			rcPlain := listen(t) // rcsso calls the emulator over plain HTTP
			ssoMux := &lateHandler{}
			ssoURL := "https://sso.example.test:" + tlsServe(t, ssoMux)
			rcURL := "https://" + c.chatHost + ":" + rcPort

			ecfg := rcemu.Config{AdminPassword: "pw", AdminPAT: "pat", CreateTokensSecret: "s", BcryptCost: bcrypt.MinCost, Logger: log,
				Settings: map[string]any{"Iframe_Integration_receive_enable": true, "Iframe_Integration_receive_origin": wwwURL,
					"Iframe_Integration_send_enable": true, "Iframe_Integration_send_target_origin": "*"}}
			ecfg.EnableIframeAuth(ssoURL+"/login", ssoURL+"/api/rocketchat/token", "POST")
			emu, err := rcemu.New(ecfg)
			if err != nil {
				t.Fatal(err)
			}
			emuMux.set(emu.Handler())
			serve(t, rcPlain, emu.Handler())

			cfg := config.Default()
			cfg.PublicURL = ssoURL
			cfg.RocketChat.URL = rcURL
			cfg.RocketChat.APIURL = "http://" + rcPlain.Addr().String()
			cfg.RocketChat.AdminUserID, cfg.RocketChat.AdminToken, cfg.RocketChat.CreateTokensSecret = emu.AdminID(), "pat", "s"
			cfg.Store = config.Store{Type: "memory"}
			cfg.Website = config.Website{Name: "Example", Origins: []string{wwwURL}}
			a, err := app.Build(t.Context(), cfg, log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = a.Close() })
			ssoMux.set(a.Handler)
			acct, _ := local.NewAccount("alice", "correct-horse-battery", "Alice", "alice@example.test", time.Now())
			_ = a.Store.CreateAccount(t.Context(), acct)

			e := &env{t: t, emu: emu, app: a, rcURL: rcURL, ssoURL: ssoURL, password: "correct-horse-battery"}
			ctx := newChromium(t, c.thirdParty)
			e.websiteLogin(ctx)

			// 1. The API URL flow: open Rocket.Chat itself.
			if err := chromedp.Do(ctx, chromedp.Navigate(rcURL+"/")); err != nil {
				t.Fatal(err)
			}
			e.waitEval(ctx, `["logged-in", "iframe"].includes((document.getElementById("rc-status")||{}).textContent)`)
			apiURL := e.chatStatus(ctx) == "logged-in"
			if apiURL != c.apiURLWins {
				t.Fatalf("API URL flow logged in = %v, want %v", apiURL, c.apiURLWins)
			}
			if !apiURL {
				// The IFrame URL inside Rocket.Chat: a login there sets a
				// Partitioned (CHIPS) cookie in Rocket.Chat's partition, which
				// the browser keeps even with third-party cookies blocked, and
				// which then also carries later API URL calls.
				e.loginInCrossSiteIframe(ctx, ssoURL+"/login")
				e.waitChat(ctx, "logged-in")
				if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`localStorage.clear()`)); err != nil {
					t.Fatal(err)
				}
				if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
					t.Fatal(err)
				}
				e.waitEval(ctx, `["logged-in", "iframe"].includes((document.getElementById("rc-status")||{}).textContent)`)
				if e.chatStatus(ctx) != "logged-in" {
					t.Fatal("the partitioned cookie did not carry the API URL call after the IFrame URL login")
				}
				t.Log("logged in through: IFrame URL login, then API URL with the partitioned cookie")
			}

			// 2. The host push flow from the website's own page: works in
			// every case (rcsso's cookie is same-site to the host page).
			page := hostPage(ssoURL, rcURL, ``)
			www.page("/app", page)
			ctx2, cancel := chromedp.NewContext(ctx) // same browser, fresh tab
			defer cancel()
			if err := chromedp.Do(ctx2, chromedp.Navigate(wwwURL+"/app")); err != nil {
				t.Fatal(err)
			}
			e.waitEval(ctx2, `window.__events.includes("Custom_Script_Logged_In")`)
			pushed, _ := chromedp.Run(ctx2, chromedp.Evaluate[bool](`window.__events.includes("rcsso-token-sent")`))
			t.Logf("logged in through: API URL %v, host push %v", apiURL, pushed)
			if !apiURL && !pushed {
				t.Fatal("logged in through neither path")
			}
			if !c.apiURLWins && !pushed {
				t.Fatal("with third-party cookies blocked across sites, the host push flow must be the way in")
			}
		})
	}
}

// clickInCrossSiteIframe clicks sel inside the cross-site iframe whose URL
// starts with urlPrefix.
func (e *env) clickInCrossSiteIframe(ctx context.Context, urlPrefix, sel string) {
	e.t.Helper()
	var id target.ID
	e.waitEvalGo(func() bool {
		infos, err := chromedp.Targets(ctx)
		if err != nil {
			return false
		}
		for _, info := range infos {
			if info.Type == "iframe" && strings.HasPrefix(info.URL, urlPrefix) {
				id = info.TargetID
				return true
			}
		}
		return false
	})
	fctx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(id))
	e.t.Cleanup(cancel)
	if err := chromedp.Do(fctx, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel))); err != nil {
		e.t.Fatalf("clicking %s inside the cross-site iframe: %v", sel, err)
	}
}

// loginInCrossSiteIframe fills rcsso's login form inside Rocket.Chat's
// iframe when that iframe is cross-site (its own process and target).
func (e *env) loginInCrossSiteIframe(ctx context.Context, urlPrefix string) {
	e.t.Helper()
	var id target.ID
	e.waitEvalGo(func() bool {
		infos, err := chromedp.Targets(ctx)
		if err != nil {
			return false
		}
		for _, info := range infos {
			if info.Type == "iframe" && strings.HasPrefix(info.URL, urlPrefix) {
				id = info.TargetID
				return true
			}
		}
		return false
	})
	// Not cancelled here: cancelling a context attached to a target detaches
	// the tab's session too.
	fctx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(id))
	e.t.Cleanup(cancel)
	err := chromedp.Do(fctx,
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), e.password+"\r"),
	)
	if err != nil {
		e.t.Fatalf("login inside the cross-site iframe: %v", err)
	}
}

// waitEvalGo polls a Go condition for at most 20 s.
func (e *env) waitEvalGo(cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatal("condition not met within 20 s")
		}
		<-tick.C
	}
}

// lateHandler lets a server start before its handler exists.
type lateHandler struct{ h atomic.Pointer[http.Handler] }

func (l *lateHandler) set(h http.Handler) { l.h.Store(&h) }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := l.h.Load()
	if h == nil {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	(*h).ServeHTTP(w, r)
}
