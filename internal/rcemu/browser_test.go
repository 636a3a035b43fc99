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
	mode       string        // API URL answer: "token", "401", "empty", "bogus", "nocors" (no CORS headers: a network error)
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
		if f.mode == "nocors" {
			f.calls++
			w.WriteHeader(http.StatusNoContent)
			return
		}
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
		push, _ := json.Marshal(r.URL.Query().Get("push"))
		fmt.Fprintf(w, `<!doctype html><title>host</title>
<iframe id="rc" src="%s" style="width:800px;height:600px"></iframe>
<script>
window.hostEvents = [];
window.loadPushes = 0;
window.addEventListener('message', (e) => { window.hostEvents.push({origin: e.origin, data: e.data}); });
window.sendCommand = (cmd) => document.getElementById('rc').contentWindow.postMessage(cmd, %s);
const push = %s;
if (push) document.getElementById('rc').addEventListener('load', () => {
  window.loadPushes++;
  sendCommand({externalCommand: 'login-with-token', token: push});
});
</script>`, html.EscapeString(rc), b, push)
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

// waitInFrame polls a JavaScript predicate inside the iframe sel (15 s).
func waitInFrame(t *testing.T, ctx context.Context, sel, expr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		nodes, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS(sel)))
		if err == nil && len(nodes) > 0 {
			_, err = chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingInFrame(nodes[0]),
				chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(time.Second)))
			if err == nil {
				return
			}
		}
		last = err
	}
	t.Fatalf("waiting in %s for %s: %v", sel, expr, last)
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

// The web client's iframe login, per client generation (client.js cites the
// Rocket.Chat source of each behaviour; rocketchat-2026.md §1.3–1.4).
func TestBrowserIframeLogin(t *testing.T) {
	browser := newBrowser(t)

	type gen struct {
		profile string
		// API URL calls on a logged-out load, and on a load with a stored token.
		loggedOutCalls, storedCalls int
		preflight                   bool
		// what the person sees ("iframe" = IFrame URL, "logged-out" =
		// Rocket.Chat's own login page) after: a logout whose API URL call
		// answers a token Rocket.Chat revoked; a network (CORS) error; a 200
		// without a token.
		afterRevoked, afterNetworkError, afterNoToken string
	}
	gens := []gen{
		// X: two IframeLogin instances each call; the post-logout call's
		// instance is not rendered (issue #30046).
		{"5.x", 2, 0, false, "logged-out", "iframe", "iframe"},
		// F1: the login page alone calls; the refused token shows the IFrame URL.
		{"6.x", 1, 0, true, "iframe", "logged-out", "iframe"},
		// F2: AppLayout's listener calls on every load; a refused loginToken
		// is ignored (#36919 not yet).
		{"7.x", 2, 1, true, "logged-out", "logged-out", "logged-out"},
		// L: listener (twice) + login page; every load.
		{"8.x", 3, 2, false, "iframe", "iframe", "logged-out"},
		{"9.0", 3, 2, false, "iframe", "iframe", "logged-out"},
	}
	for _, g := range gens {
		t.Run(g.profile, func(t *testing.T) {
			t.Run("API URL loginToken logs in", func(t *testing.T) {
				site := newFakeSite(t)
				s, ts, uid := emulatorFor(t, site, g.profile)
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
				waitCalls(t, site, g.loggedOutCalls)
				if _, pre := site.counts(); (pre > 0) != g.preflight {
					t.Fatalf("preflights %d, want some: %v", pre, g.preflight)
				}
				if st := s.Stats(); st.LoginCalls != 0 {
					t.Fatalf("the client used REST /login: %+v", st)
				}

				// Reload with the stored token.
				navigate(t, ctx, ts.URL+"/home")
				waitJS(t, ctx, "logged-in after reload", statusIs+`'logged-in' && window.__rcemu.ready`)
				waitCalls(t, site, g.loggedOutCalls+g.storedCalls)

				// Logout calls the API URL again; a live website session logs
				// the user straight back in (§1.7).
				if err := chromedp.Do(ctx, chromedp.Click("#rc-logout")); err != nil {
					t.Fatal(err)
				}
				waitJS(t, ctx, "re-login after logout", `window.__rcemu.events.some(e => e.type === 'logout') && `+statusIs+`'logged-in'`)
			})

			t.Run("logout with a cached, now revoked token", func(t *testing.T) {
				site := newFakeSite(t)
				s, ts, uid := emulatorFor(t, site, g.profile)
				cached := minter(t, s, uid)()
				site.set(func(f *fakeSite) { f.mode, f.mint = "token", func() string { return cached } })
				ctx := tab(t, browser)
				navigate(t, ctx, ts.URL+"/home")
				waitJS(t, ctx, "logged-in", statusIs+`'logged-in'`)
				if err := chromedp.Do(ctx, chromedp.Click("#rc-logout")); err != nil {
					t.Fatal(err)
				}
				waitJS(t, ctx, g.afterRevoked+" after logout", `window.__rcemu.events.some(e => e.type === 'logout') && `+statusIs+`'`+g.afterRevoked+`'`)
			})

			t.Run("network error", func(t *testing.T) {
				site := newFakeSite(t)
				_, ts, _ := emulatorFor(t, site, g.profile)
				site.set(func(f *fakeSite) { f.mode = "nocors" })
				ctx := tab(t, browser)
				navigate(t, ctx, ts.URL+"/")
				waitJS(t, ctx, g.afterNetworkError, `window.__rcemu.ready && `+statusIs+`'`+g.afterNetworkError+`'`)
			})

			t.Run("200 without a token", func(t *testing.T) {
				site := newFakeSite(t)
				_, ts, _ := emulatorFor(t, site, g.profile)
				site.set(func(f *fakeSite) { f.mode = "empty" })
				ctx := tab(t, browser)
				navigate(t, ctx, ts.URL+"/home")
				waitJS(t, ctx, g.afterNoToken, `window.__rcemu.ready && `+statusIs+`'`+g.afterNoToken+`'`)
			})
		})
	}

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

	// Host commands are heard only once the public settings have arrived,
	// after the page's load event; startup and Custom_Script_Logged_Out reach
	// the host when the generation sends them (client.js [event-old],
	// [event-79], [event-L]).
	for _, g := range []struct {
		profile       string
		startupEvents bool // startup and Custom_Script_Logged_Out on a logged-out start
		statusChanged bool
	}{{"5.x", true, false}, {"6.x", true, false}, {"7.x", false, true}, {"8.x", true, true}} {
		t.Run("host page commands and events "+g.profile, func(t *testing.T) {
			site := newFakeSite(t)
			s, ts := newTestServer(t, Config{Profile: g.profile, Settings: map[string]any{
				"Iframe_Integration_receive_enable": true, "Iframe_Integration_send_enable": true,
			}})
			site.set(func(f *fakeSite) { f.rcOrigin = ts.URL })
			s.SetSetting("Iframe_Integration_receive_origin", site.srv.URL)
			s.SetSetting("Iframe_Integration_send_target_origin", site.srv.URL)
			uid, _ := s.AddUser(NewUser{Username: "hosted", Name: "H", Password: "pw"})
			tok := minter(t, s, uid)()
			ctx := tab(t, browser)
			// The host pushes login-with-token on the iframe's load event.
			navigate(t, ctx, site.srv.URL+"/host?push="+tok+"&rc="+ts.URL+"/home")
			hasEvent := func(name string) string {
				return `window.hostEvents.some(e => e.origin === ` + jsString(ts.URL) + ` && e.data && e.data.eventName === '` + name + `')`
			}
			waitJS(t, ctx, "pushed on load", `window.loadPushes === 1`)
			waitInFrame(t, ctx, "#rc", `window.__rcemu.ready && window.__rcemu.events.some(e => e.type === 'command-lost') && document.getElementById('rc-status').textContent === 'logged-out'`)
			if st := s.Stats(); st.DDPLoginCalls != 0 {
				t.Fatalf("a command sent on the iframe's load event logged in: %+v", st)
			}
			if got := evalJS[bool](t, ctx, hasEvent("startup")+" && "+hasEvent("Custom_Script_Logged_Out")); got != g.startupEvents {
				t.Fatalf("startup and Custom_Script_Logged_Out seen: %v, want %v", got, g.startupEvents)
			}
			evalJS[chromedp.Void](t, ctx, `sendCommand({externalCommand: 'login-with-token', token: `+jsString(tok)+`})`)
			waitJS(t, ctx, "Custom_Script_Logged_In", hasEvent("Custom_Script_Logged_In"))
			evalJS[chromedp.Void](t, ctx, `sendCommand({externalCommand: 'set-user-status', status: 'away'})`)
			waitInFrame(t, ctx, "#rc", `document.getElementById('rc-user-status').textContent === 'away'`)
			if got := evalJS[bool](t, ctx, hasEvent("status-changed")); got != g.statusChanged {
				t.Fatalf("status-changed seen: %v, want %v", got, g.statusChanged)
			}
			evalJS[chromedp.Void](t, ctx, `sendCommand({externalCommand: 'go', path: '/channel/general'})`)
			waitJS(t, ctx, "room-opened", `window.hostEvents.some(e => e.data && e.data.eventName === 'room-opened' && e.data.data.name === 'general')`)
			evalJS[chromedp.Void](t, ctx, `sendCommand({externalCommand: 'logout'})`)
			waitJS(t, ctx, "logged out again", hasEvent("Custom_Script_Logged_Out"))
			waitInFrame(t, ctx, "#rc", `document.getElementById('rc-status').textContent === 'logged-out'`)
			if u, _ := s.UserByID(uid); u.ResumeTokens != 0 {
				t.Fatalf("logout command left %d tokens", u.ResumeTokens)
			}
		})
	}

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

// waitCalls polls (15 s at most) until the site saw n API URL calls in all;
// more than n fails at once.
func waitCalls(t *testing.T, site *fakeSite, n int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		calls, _ := site.counts()
		if calls == n {
			return
		}
		if calls > n || time.Now().After(deadline) {
			t.Fatalf("API URL calls = %d, want %d", calls, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return strings.ReplaceAll(string(b), "<", `\u003c`)
}
