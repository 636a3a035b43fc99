package rcemu

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const chromiumPath = "/usr/bin/chromium"

// fakeSite plays the website: the API URL, the IFrame URL and a host page
// that embeds the emulator, on another loopback origin.
type fakeSite struct {
	mu         sync.Mutex
	mode       string        // API URL answer: "token", "401", "empty", "bogus"
	mint       func() string // token for mode "token"
	iframePost string        // loginToken the IFrame URL page posts to its parent ("" = none)
	rcOrigin   string
	calls      int
	preflights int
	srv        *httptest.Server
}

func newFakeSite(t *testing.T) *fakeSite {
	f := &fakeSite{mode: "401"}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeSite) set(fn func(f *fakeSite)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeSite) counts() (calls, preflights int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.preflights
}

func (f *fakeSite) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/api":
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", f.rcOrigin)
		h.Set("Access-Control-Allow-Credentials", "true")
		h.Set("Vary", "Origin")
		if r.Method == http.MethodOptions {
			f.preflights++
			h.Set("Access-Control-Allow-Methods", "GET, POST")
			h.Set("Access-Control-Allow-Headers", "Content-Type")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		f.calls++
		h.Set("Content-Type", "application/json")
		switch f.mode {
		case "token":
			_ = json.NewEncoder(w).Encode(map[string]string{"loginToken": f.mint()})
		case "bogus":
			_ = json.NewEncoder(w).Encode(map[string]string{"loginToken": "not-a-valid-token"})
		case "empty":
			_, _ = w.Write([]byte(`{}`))
		default:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"not logged in"}`))
		}
	case "/iframe":
		script := ""
		if f.iframePost != "" {
			b, _ := json.Marshal(f.iframePost)
			script = `window.parent.postMessage({event:'login-with-token', loginToken:` + string(b) + `}, '*');`
		}
		fmt.Fprintf(w, `<!doctype html><title>site login</title><p>website login</p><script>%s</script>`, script)
	case "/host":
		rc := r.URL.Query().Get("rc")
		b, _ := json.Marshal(f.rcOrigin)
		fmt.Fprintf(w, `<!doctype html><title>host</title>
<iframe id="rc" src="%s" style="width:800px;height:600px"></iframe>
<script>
window.hostEvents = [];
window.addEventListener('message', (e) => { window.hostEvents.push({origin: e.origin, data: e.data}); });
window.sendCommand = (cmd) => document.getElementById('rc').contentWindow.postMessage(cmd, %s);
</script>`, html.EscapeString(rc), b)
	default:
		http.NotFound(w, r)
	}
}

// newBrowser starts headless Chromium for the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("no Chromium at %s", chromiumPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil { // start the browser
		t.Fatalf("starting Chromium: %v", err)
	}
	return ctx
}

// tab opens a new tab with a deadline.
func tab(t *testing.T, browser context.Context) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	ctx, cancelT := context.WithTimeout(ctx, 45*time.Second)
	t.Cleanup(func() { cancelT(); cancel() })
	return ctx
}

func navigate(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("navigate %s: %v", url, err)
	}
}

// waitJS polls a JavaScript predicate until it is truthy; on timeout it
// fails with the client's state.
func waitJS(t *testing.T, ctx context.Context, what, expr string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second)))
	if err != nil {
		state, _ := chromedp.Run(ctx, chromedp.Evaluate[string](
			`JSON.stringify({status: (document.getElementById('rc-status')||{}).textContent, rcemu: window.__rcemu, host: window.hostEvents})`))
		t.Fatalf("waiting for %s: %v\nstate: %s", what, err, state)
	}
}

func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

const statusIs = `document.getElementById('rc-status').textContent === `

// emulatorFor starts an emulator whose iframe settings point at site.
func emulatorFor(t *testing.T, site *fakeSite, profile string) (*Server, *httptest.Server, string) {
	cfg := Config{Profile: profile}
	cfg.EnableIframeAuth(site.srv.URL+"/iframe", site.srv.URL+"/api", "POST")
	s, ts := newTestServer(t, cfg)
	site.set(func(f *fakeSite) { f.rcOrigin = ts.URL })
	uid, err := s.AddUser(NewUser{Username: "web.user", Name: "Web User", Email: "web@example.com", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	return s, ts, uid
}

// minter returns fresh resume tokens for uid, like a bridge writing Mongo.
func minter(t *testing.T, s *Server, uid string) func() string {
	return func() string {
		tok := randomSecret()
		if err := s.PushResumeToken(uid, tok); err != nil {
			t.Error(err)
		}
		return tok
	}
}

func TestBrowserIframeLogin(t *testing.T) {
	browser := newBrowser(t)

	t.Run("API URL loginToken logs in (8.x, no preflight)", func(t *testing.T) {
		site := newFakeSite(t)
		s, ts, uid := emulatorFor(t, site, "8.x")
		site.set(func(f *fakeSite) { f.mode, f.mint = "token", minter(t, s, uid) })
		ctx := tab(t, browser)
		navigate(t, ctx, ts.URL+"/home")
		waitJS(t, ctx, "logged-in", statusIs+`'logged-in'`)
		if got := evalJS[string](t, ctx, `document.getElementById('rc-username').textContent`); got != "web.user" {
			t.Fatalf("#rc-username = %q", got)
		}
		if got := evalJS[string](t, ctx, `localStorage.getItem('Meteor.userId')`); got != uid {
			t.Fatalf("Meteor.userId = %q", got)
		}
		if n := evalJS[int](t, ctx, `window.__rcemu.apiCalls`); n != 1 {
			t.Fatalf("apiCalls = %d", n)
		}
		if calls, pre := site.counts(); calls != 1 || pre != 0 {
			t.Fatalf("API URL calls %d, preflights %d; want 1, 0", calls, pre)
		}
		if st := s.Stats(); st.LoginCalls != 0 || st.DDPLoginCalls != 1 {
			t.Fatalf("the client used REST /login: %+v", st)
		}

		// Reload: the stored token resumes without calling the API URL.
		navigate(t, ctx, ts.URL+"/home")
		waitJS(t, ctx, "logged-in after reload", statusIs+`'logged-in'`)
		if calls, _ := site.counts(); calls != 1 {
			t.Fatalf("reload called the API URL (%d calls)", calls)
		}

		// Logout calls the API URL again; a live website session logs the
		// user straight back in (§1.7).
		if err := chromedp.Do(ctx, chromedp.Click("#rc-logout")); err != nil {
			t.Fatal(err)
		}
		// (__rcemu counts per page load: this page has not called it yet.)
		waitJS(t, ctx, "re-login after logout", `window.__rcemu.apiCalls === 1 && `+statusIs+`'logged-in'`)
		if calls, _ := site.counts(); calls != 2 {
			t.Fatalf("API URL calls = %d, want 2", calls)
		}
		if u, _ := s.UserByID(uid); u.ResumeTokens != 1 {
			t.Fatalf("logout did not revoke the old token: %d tokens", u.ResumeTokens)
		}
	})

	t.Run("logout with a cached, now revoked token shows the iframe", func(t *testing.T) {
		site := newFakeSite(t)
		s, ts, uid := emulatorFor(t, site, "6.x")
		cached := minter(t, s, uid)()
		site.set(func(f *fakeSite) { f.mode, f.mint = "token", func() string { return cached } })
		ctx := tab(t, browser)
		navigate(t, ctx, ts.URL+"/home")
		waitJS(t, ctx, "logged-in", statusIs+`'logged-in'`)
		if err := chromedp.Do(ctx, chromedp.Click("#rc-logout")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, "iframe after logout", statusIs+`'iframe' && !!document.getElementById('rc-login-iframe')`)
	})

	t.Run("API URL 401 shows the IFrame URL", func(t *testing.T) {
		site := newFakeSite(t)
		_, ts, _ := emulatorFor(t, site, "8.x")
		ctx := tab(t, browser)
		navigate(t, ctx, ts.URL+"/")
		waitJS(t, ctx, "iframe", statusIs+`'iframe' && !!document.getElementById('rc-login-iframe')`)
		src := evalJS[string](t, ctx, `document.getElementById('rc-login-iframe').getAttribute('src')`)
		title := evalJS[string](t, ctx, `document.getElementById('rc-login-iframe').title`)
		if src != site.srv.URL+"/iframe" || title != "Login" {
			t.Fatalf("iframe src %q title %q", src, title)
		}
	})

	t.Run("7.x sends Content-Type and so a preflight", func(t *testing.T) {
		site := newFakeSite(t)
		s, ts, uid := emulatorFor(t, site, "7.x")
		site.set(func(f *fakeSite) { f.mode, f.mint = "token", minter(t, s, uid) })
		ctx := tab(t, browser)
		navigate(t, ctx, ts.URL+"/home")
		waitJS(t, ctx, "logged-in", statusIs+`'logged-in'`)
		if calls, pre := site.counts(); calls != 1 || pre != 1 {
			t.Fatalf("API URL calls %d, preflights %d; want 1, 1", calls, pre)
		}
	})

	t.Run("200 without a token does nothing", func(t *testing.T) {
		site := newFakeSite(t)
		_, ts, _ := emulatorFor(t, site, "8.x")
		site.set(func(f *fakeSite) { f.mode = "empty" })
		ctx := tab(t, browser)
		navigate(t, ctx, ts.URL+"/home")
		waitJS(t, ctx, "logged-out", statusIs+`'logged-out'`)
		if evalJS[bool](t, ctx, `!!document.getElementById('rc-login-iframe')`) {
			t.Fatal("iframe shown for a 200 without token")
		}
	})

	t.Run("invalid loginToken shows the iframe; the iframe page logs in", func(t *testing.T) {
		site := newFakeSite(t)
		s, ts, uid := emulatorFor(t, site, "8.x")
		good := minter(t, s, uid)()
		site.set(func(f *fakeSite) { f.mode, f.iframePost = "bogus", "also-bogus" })
		ctx := tab(t, browser)
		navigate(t, ctx, ts.URL+"/home")
		waitJS(t, ctx, "login-error reply to the iframe",
			statusIs+`'iframe' && window.__rcemu.events.some(e => e.type === 'login-error' && e.response === "You've been logged out by the server. Please log in again. [403]")`)
		// Now the IFrame URL page posts a valid token (reload the iframe).
		site.set(func(f *fakeSite) { f.iframePost = good })
		evalJS[chromedp.Void](t, ctx, `document.getElementById('rc-login-iframe').src += '?again'`)
		waitJS(t, ctx, "logged-in via login-with-token", statusIs+`'logged-in' && !document.getElementById('rc-login-iframe')`)
		if got := evalJS[string](t, ctx, `localStorage.getItem('Meteor.loginToken')`); got != good {
			t.Fatalf("stored token %q, want the posted one", got)
		}
	})

	t.Run("host page commands and events", func(t *testing.T) {
		site := newFakeSite(t)
		s, ts := newTestServer(t, Config{Settings: map[string]any{
			"Iframe_Integration_receive_enable": true, "Iframe_Integration_send_enable": true,
		}})
		site.set(func(f *fakeSite) { f.rcOrigin = ts.URL })
		s.SetSetting("Iframe_Integration_receive_origin", site.srv.URL)
		s.SetSetting("Iframe_Integration_send_target_origin", site.srv.URL)
		uid, _ := s.AddUser(NewUser{Username: "hosted", Name: "H", Password: "pw"})
		tok := minter(t, s, uid)()
		ctx := tab(t, browser)
		navigate(t, ctx, site.srv.URL+"/host?rc="+ts.URL+"/home")
		hasEvent := func(name string) string {
			return `window.hostEvents.some(e => e.origin === ` + jsString(ts.URL) + ` && e.data && e.data.eventName === '` + name + `')`
		}
		waitJS(t, ctx, "startup + logged out", hasEvent("startup")+" && "+hasEvent("Custom_Script_Logged_Out"))
		evalJS[chromedp.Void](t, ctx, `sendCommand({externalCommand: 'login-with-token', token: `+jsString(tok)+`})`)
		waitJS(t, ctx, "Custom_Script_Logged_In", hasEvent("Custom_Script_Logged_In"))
		evalJS[chromedp.Void](t, ctx, `sendCommand({externalCommand: 'go', path: '/channel/general'})`)
		waitJS(t, ctx, "room-opened", `window.hostEvents.some(e => e.data && e.data.eventName === 'room-opened' && e.data.data.name === 'general')`)
		evalJS[chromedp.Void](t, ctx, `sendCommand({externalCommand: 'logout'})`)
		waitJS(t, ctx, "logged out again", `window.hostEvents.filter(e => e.data && e.data.eventName === 'Custom_Script_Logged_Out').length === 2`)
		if u, _ := s.UserByID(uid); u.ResumeTokens != 0 {
			t.Fatalf("logout command left %d tokens", u.ResumeTokens)
		}
	})

	t.Run("command origin check is exact and untrimmed", func(t *testing.T) {
		_, ts := newTestServer(t, Config{Settings: map[string]any{"Iframe_Integration_receive_enable": true}})
		ctx := tab(t, browser)
		navigate(t, ctx, ts.URL+"/home")
		waitJS(t, ctx, "ready", `window.__rcemu.ready && `+statusIs+`'logged-out'`)
		// "x, <origin>": the space makes the second entry never match (§3.1).
		evalJS[chromedp.Void](t, ctx, `window.__rcemu.settings.Iframe_Integration_receive_origin = 'http://other.test, ' + location.origin;
			window.postMessage({externalCommand: 'go', path: '/channel/a'}, '*')`)
		waitJS(t, ctx, "rejected", `window.__rcemu.events.some(e => e.type === 'command-rejected' && e.reason === 'origin')`)
		evalJS[chromedp.Void](t, ctx, `window.__rcemu.settings.Iframe_Integration_receive_origin = 'http://other.test,' + location.origin;
			window.postMessage({externalCommand: 'go', path: '/channel/b'}, '*')`)
		waitJS(t, ctx, "accepted", `location.pathname === '/channel/b'`)
	})
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return strings.ReplaceAll(string(b), "<", `\u003c`)
}
