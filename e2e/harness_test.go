// Package e2e drives real headless Chromium through a host page, the
// Rocket.Chat emulator and rcsso, each on its own origin. Host names under
// .test are mapped to 127.0.0.1 by Chromium's --host-resolver-rules:
//
//	chat.example.test  the Rocket.Chat emulator (web client + REST)
//	sso.example.test   rcsso (API URL, IFrame URL) — same site as chat
//	www.example.test   another origin on the same site (not allowed)
//	evil.test          another site
package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
	"github.com/rcsso/rcsso/internal/testing/mongotest"
)

// browserCtx is the first tab of the shared Chromium; tests open their own
// browser contexts (separate cookies and storage) from it.
var browserCtx context.Context

func chromiumPath() string {
	if p := os.Getenv("E2E_CHROMIUM"); p != "" {
		return p
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	return ""
}

func TestMain(m *testing.M) {
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CI") != "" {
			fmt.Fprintln(os.Stderr, "e2e: chromium not found; scripts/test.sh installs it (apt-get install chromium)")
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "e2e: chromium not found, skipping browser tests (scripts/test.sh installs it)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "rcsso-e2e-chromium-")
	if err != nil {
		panic(err)
	}
	ctx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(dir),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("host-resolver-rules", "MAP *.test 127.0.0.1"),
	)
	bctx, bcancel := chromedp.NewContext(ctx)
	if err := chromedp.Do(bctx, chromedp.Navigate("about:blank")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting chromium:", err)
		os.Exit(1)
	}
	browserCtx = bctx
	code := m.Run()
	bcancel()
	cancel()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// env is one deployment: the emulator and rcsso on distinct origins.
type env struct {
	t        *testing.T
	emu      *rcemu.Server
	app      *app.App
	rcURL    string      // http://chat.example.test:PORT
	ssoURL   string      // http://sso.example.test:PORT
	www      *pageServer // same site as rcsso and Rocket.Chat
	other    *pageServer // another site (www.other.test)
	evil     *pageServer
	password string
	// preflights counts CORS preflights (OPTIONS) of the API URL.
	preflights atomic.Int64
	// base is the emulator's counters once rcsso has started.
	base rcemu.Stats
	// roomIDs are the _ids of the rooms envOptions.rooms made, by name.
	roomIDs map[string]string
}

// stats returns the emulator's counters since rcsso started.
func (e *env) stats() rcemu.Stats {
	s, b := e.emu.Stats(), e.base
	s.CreateTokenCalls -= b.CreateTokenCalls
	s.UsersCreateCalls -= b.UsersCreateCalls
	s.UsersUpdateCalls -= b.UsersUpdateCalls
	s.UsersInfoCalls -= b.UsersInfoCalls
	s.LoginCalls -= b.LoginCalls
	s.LogoutCalls -= b.LogoutCalls
	s.MeCalls -= b.MeCalls
	return s
}

type envOptions struct {
	profile string
	// noIframeAuth leaves Rocket.Chat's iframe authentication off (only
	// the host push flow can log in).
	noIframeAuth bool
	// hostPush enables Rocket.Chat's iframe integration for the host pages
	// www.example.test and www.other.test, lists them in website.origins,
	// and sets webhooks.secret.
	hostPush bool
	// identity replaces the identity sources (default: local only).
	identity []config.IdentitySource
	// settingsDelay is the emulator's rcemu.Config.SettingsDelay (0: its
	// default): how long after the chat page's load event its public
	// settings, and so its command listener, arrive.
	settingsDelay time.Duration
	// minting selects the minting mode: "" (create-token) or "oauth" (the
	// emulator gets Custom OAuth service "rcsso" pointing at rcsso's
	// /oauth/identity; rcsso gets no Rocket.Chat admin credentials).
	minting string
	// nativeLogin sets website.native_login; twoFactor the emulator's
	// rcemu.Config.TwoFactor (TOTP and e-mail codes at login).
	nativeLogin, twoFactor bool
	// rooms sets provisioning.rooms; the emulator gets each channel and
	// private group it names (env.roomIDs), as an administrator made them.
	rooms []config.RoomGrant
}

// newEnv starts the emulator and rcsso with a local account alice.
func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rcLn := listen(t)
	ssoLn := listen(t)
	rcURL := "http://chat.example.test:" + port(rcLn)
	ssoURL := "http://sso.example.test:" + port(ssoLn)
	www := newPageServer(t, "www.example.test")
	other := newPageServer(t, "www.other.test")
	evil := newPageServer(t, "evil.test")

	secret := "create-tokens-secret-for-tests"
	emuCfg := rcemu.Config{
		Profile:              o.profile,
		AdminPassword:        "admin-password",
		AdminPAT:             "admin-personal-access-token",
		CreateTokensSecret:   secret,
		CreateTokensForUsers: true,
		BcryptCost:           bcrypt.MinCost,
		Logger:               log,
		SettingsDelay:        o.settingsDelay,
		TwoFactor:            o.twoFactor,
	}
	if !o.noIframeAuth {
		emuCfg.EnableIframeAuth(ssoURL+"/login", ssoURL+"/api/rocketchat/token", "POST")
	}
	if o.hostPush {
		// Iframe integration: commands from the host pages, events to them.
		emuCfg.Settings = map[string]any{
			"Iframe_Integration_receive_enable": true, "Iframe_Integration_receive_origin": www.URL + "," + other.URL,
			"Iframe_Integration_send_enable": true, "Iframe_Integration_send_target_origin": "*",
		}
	}
	var mongoURL string
	if strings.HasPrefix(o.minting, "mongo-") {
		// Rocket.Chat's users live in MongoDB (embedded FerretDB), which
		// rcsso writes directly.
		mongoURL = mongotest.Start(t)
		emuCfg.MongoURL = mongoURL
	}
	if o.minting == "oauth" {
		emuCfg.OAuthServices = []rcemu.OAuthService{{Name: "rcsso", IdentityURL: "http://" + ssoLn.Addr().String() + "/oauth/identity",
			TokenSentVia: "header", UsernameField: "username", MergeUsers: true}}
	}
	emu, err := rcemu.New(emuCfg)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, rcLn, emu.Handler())
	roomIDs := map[string]string{}
	for _, g := range o.rooms {
		for _, name := range append(slices.Clone(g.Channels), g.PrivateGroups...) {
			id, err := emu.AddRoom(rcemu.NewRoom{Name: name, Private: slices.Contains(g.PrivateGroups, name)})
			if err != nil {
				t.Fatal(err)
			}
			roomIDs[name] = id
		}
	}

	cfg := config.Default()
	cfg.Audit.Path = "off"
	cfg.Listen = ssoLn.Addr().String()
	cfg.PublicURL = ssoURL
	cfg.RocketChat.URL = rcURL
	cfg.RocketChat.APIURL = "http://" + rcLn.Addr().String()
	cfg.RocketChat.AdminUserID = emu.AdminID()
	cfg.RocketChat.AdminToken = "admin-personal-access-token"
	cfg.RocketChat.CreateTokensSecret = secret
	cfg.Store = config.Store{Type: "sqlite", Options: map[string]any{"path": t.TempDir() + "/rcsso.db"}}
	cfg.Website = config.Website{Name: "Example", Origins: []string{}, NativeLogin: o.nativeLogin}
	if o.hostPush {
		cfg.Website.Origins = []string{www.URL, other.URL}
		cfg.Webhooks.Secret = webhookSecret
	}
	if o.identity != nil {
		cfg.Identity = o.identity
	}
	cfg.Provision.Rooms = o.rooms
	if o.minting == "password" {
		cfg.Minting.Mode = "password"
	}
	if mongoURL != "" {
		cfg.Minting.Mode = o.minting
		cfg.Minting.Options = map[string]any{"mongo": map[string]any{"url": mongoURL}}
		cfg.RocketChat.AdminUserID, cfg.RocketChat.AdminToken, cfg.RocketChat.CreateTokensSecret = "", "", ""
	}
	if o.minting == "oauth" {
		cfg.Minting.Mode = "oauth"
		cfg.Minting.Options = map[string]any{"oauth": map[string]any{"service_name": "rcsso", "client_id": "rocketchat", "client_secret": oauthClientSecret}}
		cfg.RocketChat.AdminUserID, cfg.RocketChat.AdminToken, cfg.RocketChat.CreateTokensSecret = "", "", ""
	}
	a, err := app.Build(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	e0 := &env{}
	serve(t, ssoLn, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions && r.URL.Path == "/api/rocketchat/token" {
			e0.preflights.Add(1)
		}
		a.Handler.ServeHTTP(w, r)
	}))

	e := e0
	e.t, e.emu, e.app, e.rcURL, e.ssoURL, e.password = t, emu, a, rcURL, ssoURL, "correct-horse-battery"
	e.base = emu.Stats() // after rcsso's start-up capability check
	e.roomIDs = roomIDs
	acct, err := local.NewAccount("alice", e.password, "Alice Example", "alice@example.test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Store.CreateAccount(t.Context(), acct); err != nil {
		t.Fatal(err)
	}
	e.www, e.other, e.evil = www, other, evil
	return e
}

// webhookSecret signs /webhooks/* and /embed/codes in tests.
const webhookSecret = "webhook-secret-for-tests-0123456789abcdef"

// browser returns a fresh browser context (its own cookies and storage).
func (e *env) browser() context.Context {
	e.t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx, chromedp.WithNewBrowserContext())
	e.t.Cleanup(cancel)
	ctx, cancel2 := context.WithTimeout(ctx, 60*time.Second)
	e.t.Cleanup(cancel2)
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		e.t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// websiteLogin logs alice in on the website (top-level rcsso login form).
func (e *env) websiteLogin(ctx context.Context) {
	e.t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.ssoURL+"/login?return_to=/healthz"),
		chromedp.SetValue("#username", "alice"),
		chromedp.SetValue("#password", e.password),
		chromedp.Click("#login-submit"),
		chromedp.WaitVisible("body"),
	)
	if err != nil {
		e.t.Fatalf("website login: %v", err)
	}
	e.waitEval(ctx, `location.pathname === "/healthz"`)
}

// waitEval polls a JS expression until it is true, across navigations,
// for at most 20 s.
func (e *env) waitEval(ctx context.Context, expr string) {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		last = err
		select {
		case <-ctx.Done():
			e.t.Fatalf("waiting for %s: %v", expr, ctx.Err())
		case <-tick.C:
		}
	}
	e.t.Fatalf("waiting for %s: timed out (last error: %v)", expr, last)
}

// iframeText waits (20 s at most) until the element sel inside the iframe
// frameSel has text, across the iframe's navigations, and returns it.
func (e *env) iframeText(ctx context.Context, frameSel, sel string) (string, error) {
	return e.iframeEval(ctx, frameSel, fmt.Sprintf(`(document.querySelector(%q)||{}).textContent || false`, sel))
}

// iframeWaitText waits until the element sel inside the iframe frameSel has
// exactly the text want.
func (e *env) iframeWaitText(ctx context.Context, frameSel, sel, want string) error {
	_, err := e.iframeEval(ctx, frameSel, fmt.Sprintf(`(document.querySelector(%q)||{}).textContent === %q && %q`, sel, want, want))
	return err
}

// iframeEval polls expr inside the iframe frameSel until it yields a
// truthy string (20 s at most), across the iframe's navigations.
func (e *env) iframeEval(ctx context.Context, frameSel, expr string) (string, error) {
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for time.Now().Before(deadline) {
		nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS(frameSel)))
		if err == nil && len(nodes) > 0 {
			var v string
			v, err = chromedp.Run(ctx, chromedp.Poll[string](expr, chromedp.WithPollingInFrame(nodes[0]), chromedp.WithPollingTimeout(200*time.Millisecond)))
			if err == nil {
				return v, nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-tick.C:
		}
	}
	return "", fmt.Errorf("waiting in %s for %s: %v", frameSel, expr, last)
}

// status returns the emulator web client's #rc-status text.
func (e *env) chatStatus(ctx context.Context) string {
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById("rc-status")||{}).textContent||""`))
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.TrimSpace(s)
}

func (e *env) waitChat(ctx context.Context, want string) {
	e.t.Helper()
	e.waitEval(ctx, fmt.Sprintf(`(document.getElementById("rc-status")||{}).textContent === %q`, want))
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func port(ln net.Listener) string {
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

func serve(t *testing.T, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// pageServer serves arbitrary test pages on its own origin.
type pageServer struct {
	URL string
	mux *http.ServeMux
}

func newPageServer(t *testing.T, host string) *pageServer {
	ln := listen(t)
	p := &pageServer{URL: "http://" + host + ":" + port(ln), mux: http.NewServeMux()}
	serve(t, ln, p.mux)
	return p
}

// page registers an HTML page at path.
func (p *pageServer) page(path, html string) string {
	p.mux.HandleFunc("GET "+path, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(html))
	})
	return p.URL + path
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// clickInIframe waits until sel exists in the same-site iframe frameSel's
// current document, then clicks it.
func (e *env) clickInIframe(ctx context.Context, frameSel, sel string) {
	e.t.Helper()
	if _, err := e.iframeEval(ctx, frameSel, fmt.Sprintf(`document.readyState === "complete" && !!document.querySelector(%q) && "ready"`, sel)); err != nil {
		e.t.Fatal(err)
	}
	nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS(frameSel)))
	if err != nil || len(nodes) == 0 {
		e.t.Fatalf("no %s: %v", frameSel, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.FromNode(nodes[0]))); err != nil {
		e.t.Fatalf("clicking %s in %s: %v", sel, frameSel, err)
	}
}

// websiteLogout logs out with rcsso's logout page and waits for the result.
func (e *env) websiteLogout(ctx context.Context) {
	e.t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.ssoURL+"/logout"), chromedp.Click(chromedp.CSS("#logout-submit"))); err != nil {
		e.t.Fatal(err)
	}
	e.waitEval(ctx, `document.body && document.body.textContent.includes("You are logged out")`)
}

// attach returns a context attached to the first target of type typ
// ("iframe" for a cross-site iframe, "page" for a popup) whose URL starts
// with urlPrefix, waiting for it to appear. The context is not cancelled
// before the test ends: cancelling an attached context detaches the tab's
// session too.
func (e *env) attach(ctx context.Context, typ, urlPrefix string) context.Context {
	e.t.Helper()
	var id target.ID
	e.waitEvalGo(func() bool {
		infos, err := chromedp.Targets(ctx)
		if err != nil {
			return false
		}
		for _, info := range infos {
			if info.Type == typ && strings.HasPrefix(info.URL, urlPrefix) {
				id = info.TargetID
				return true
			}
		}
		return false
	})
	tctx, cancel := chromedp.NewContext(ctx, chromedp.WithTargetID(id))
	e.t.Cleanup(cancel)
	return tctx
}

// fillLogin submits rcsso's local login form in ctx as alice.
func (e *env) fillLogin(ctx context.Context) {
	e.t.Helper()
	err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), e.password+"\r"),
	)
	if err != nil {
		e.t.Fatalf("filling the login form: %v", err)
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

// screenshot saves the page as it is into $E2E_SCREENSHOTS/name when that
// names a directory.
func (e *env) screenshot(ctx context.Context, name string) {
	t := e.t
	t.Helper()
	dir := os.Getenv("E2E_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Errorf("screenshot: %v", err)
	}
}
