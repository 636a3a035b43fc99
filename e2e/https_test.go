package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

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
			www := &pageServer{mux: http.NewServeMux()}
			www.URL = "https://www.example.test:" + tlsServe(t, www.mux)
			e := newTLSEnv(t, tlsOptions{chatHost: c.chatHost, hostPage: www.URL, storageAccessHeaders: true})
			rcURL, ssoURL, wwwURL := e.rcURL, e.ssoURL, www.URL
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
				e.fillLogin(e.attach(ctx, "iframe", ssoURL+"/login"))
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

// tlsOptions shape an HTTPS deployment: Rocket.Chat on chatHost, rcsso on
// sso.example.test, and optionally a host page origin allowed to push.
type tlsOptions struct {
	chatHost             string
	hostPage             string // "" = no host push
	storageAccessHeaders bool
	identity             []config.IdentitySource // nil: local only
}

// newTLSEnv starts the emulator and rcsso over HTTPS (rcsso calls the
// emulator over plain HTTP) with the local account alice.
func newTLSEnv(t *testing.T, o tlsOptions) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Listeners first: every URL must be known before configuring.
	emuMux, ssoMux := &lateHandler{}, &lateHandler{}
	rcURL := "https://" + o.chatHost + ":" + tlsServe(t, emuMux)
	ssoURL := "https://sso.example.test:" + tlsServe(t, ssoMux)
	rcPlain := listen(t)
	ecfg := rcemu.Config{AdminPassword: "pw", AdminPAT: "pat", CreateTokensSecret: "s", BcryptCost: bcrypt.MinCost, Logger: log}
	if o.hostPage != "" {
		ecfg.Settings = map[string]any{"Iframe_Integration_receive_enable": true, "Iframe_Integration_receive_origin": o.hostPage,
			"Iframe_Integration_send_enable": true, "Iframe_Integration_send_target_origin": "*"}
	}
	ecfg.EnableIframeAuth(ssoURL+"/login", ssoURL+"/api/rocketchat/token", "POST")
	emu, err := rcemu.New(ecfg)
	if err != nil {
		t.Fatal(err)
	}
	emuMux.set(emu.Handler())
	serve(t, rcPlain, emu.Handler())
	cfg := config.Default()
	cfg.Audit.Path = "off"
	cfg.PublicURL, cfg.RocketChat.URL, cfg.RocketChat.APIURL = ssoURL, rcURL, "http://"+rcPlain.Addr().String()
	cfg.RocketChat.AdminUserID, cfg.RocketChat.AdminToken, cfg.RocketChat.CreateTokensSecret = emu.AdminID(), "pat", "s"
	cfg.Store = config.Store{Type: "memory"}
	cfg.Session.StorageAccessHeaders = o.storageAccessHeaders
	cfg.Website = config.Website{Name: "Example"}
	if o.identity != nil {
		cfg.Identity = o.identity
	}
	if o.hostPage != "" {
		cfg.Website.Origins = []string{o.hostPage}
	}
	a, err := app.Build(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	ssoMux.set(a.Handler)
	e := &env{t: t, emu: emu, app: a, rcURL: rcURL, ssoURL: ssoURL, password: "correct-horse-battery"}
	acct, err := local.NewAccount("alice", e.password, "Alice", "alice@example.test", time.Now())
	if err == nil {
		err = a.Store.CreateAccount(t.Context(), acct)
	}
	if err != nil {
		t.Fatal(err)
	}
	return e
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
