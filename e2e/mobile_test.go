package e2e

// Rocket.Chat's mobile app (RocketChat/Rocket.Chat.ReactNative) has no
// iframe code of its own. With Accounts_iframe_enabled it opens the
// workspace URL in a WebView, and watches the URLs of that top-level page
// for a token that the IFrame URL posted to the web client. This file plays
// that app against the emulator and rcsso: the WebView is a Chromium tab,
// the app's JavaScript runs in a second, blank tab, and the app's REST calls
// are made from Go.
//
// Every behaviour below is from Rocket.Chat.ReactNative
// @2af4bda3e664c539f5ca5b042c7f1e84fb2e42c4 (app 4.72.0, 2026-05-06), unless
// another source is named:
//
//   - app/views/WorkspaceView/index.tsx: the Login button opens
//     AuthenticationWebView with {url: server, authType: 'iframe'} when the
//     public setting Accounts_iframe_enabled is true (the only setting it
//     checks); app/lib/methods/getSettings.ts getLoginSettings reads it from
//     GET <server>/api/v1/settings.public (?_id=… from 7.0.0, ?query=…
//     before).
//   - app/views/AuthenticationWebView.tsx: the WebView loads that URL
//     (incognito, with the user agent of app/lib/constants/userAgent.ts) and
//     injects a script (injectedJavaScript) that sets location.hash to the
//     JSON of every object posted to the window, and posts location.href to
//     the app after history.pushState, history.replaceState and popstate.
//     onNavigationStateChange (for navigation events, and for onMessage with
//     the event's url) decodes the URL, tests it against
//     new RegExp(`(?=.*(${server}))(?=.*(event|loginToken|token))`, 'g'),
//     parses the text after '#' as JSON, and on event 'login-with-token'
//     logs in with {resume: token || loginToken} after a 3 s debounce, or on
//     'try-iframe-login' calls the API URL itself (fetch, no status check,
//     data.login || data.loginToken).
//   - app/lib/services/connect.ts loginOAuthOrSso → loginTOTP → login:
//     sdk.login(credentials), which is POST <server>/api/v1/login with the
//     credentials as the JSON body (RocketChat/Rocket.Chat.js.SDK
//     src/lib/api/api.ts login, src/lib/clients/Rocketchat.ts), then the
//     app closes the WebView (navigation.pop()).
//   - react-native-webview (the app pins 13.16.1; read at
//     react-native-webview/react-native-webview
//     @d65a961080dad3e82d33370ad6e8d90e973fcbd3): Android runs
//     injectedJavaScript in onPageFinished wrapped in a function
//     (android/…/RNCWebView.java callInjectedJavaScript), iOS at document end;
//     both in the top frame only by default; onNavigationStateChange fires
//     for the top frame's navigations, including fragment and history
//     changes (RNCWebViewClient.java doUpdateVisitedHistory).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/rcsso/rcsso/internal/config"
)

// The WebView's user agents (app/lib/constants/userAgent.ts).
const (
	mobileAndroidUA = "Mozilla/5.0 (Linux; Android 12; SM-A315G) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/91.0.4472.114 Mobile Safari/537.36"
	mobileIOSUA     = "Mozilla/5.0 (iPhone; CPU iPhone OS 15_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/15.5 Mobile/15E148 Safari/604.1"
)

// mobileNativeUA is the User-Agent of the app's own HTTP calls
// (app/lib/methods/helpers/fetch.ts: "RC Mobile; <os> <version>; v<app> (<build>)").
const mobileNativeUA = "RC Mobile; android 12; v4.72.0 (999999)"

// mobileDebounce is the app's delay before it logs in with a token it
// caught ("Force 3s delay so the server has time to evaluate the token").
const mobileDebounce = 3 * time.Second

// mobileBridgeBinding is the CDP binding that stands in for the native side
// of window.ReactNativeWebView.postMessage.
const mobileBridgeBinding = "rcssoTestReactNativeWebView"

// mobileWebViewScript runs in every new document of the WebView and does,
// in the top frame only, what react-native-webview and the app's
// injectedJavaScript do there (same behaviour, not the app's text):
//   - window.ReactNativeWebView.postMessage(data) reaches the app as an
//     onMessage event that carries the WebView's current URL;
//   - once the page has loaded (Android: onPageFinished), the injected
//     script adds a message listener that writes any object it receives
//     into location.hash as JSON, and makes history.pushState,
//     history.replaceState and popstate post location.href to the app.
const mobileWebViewScript = `(function () {
  if (window !== window.top) return;
  window.ReactNativeWebView = {
    postMessage: function (data) {
      window.` + mobileBridgeBinding + `(JSON.stringify({ url: window.location.href, data: String(data) }));
    }
  };
  window.addEventListener('load', function () {
    window.addEventListener('message', function (e) {
      if (typeof e.data === 'object') {
        window.location.hash = JSON.stringify(e.data);
      }
    });
    ['pushState', 'replaceState'].forEach(function (name) {
      var original = history[name];
      history[name] = function () {
        var res = original.apply(this, arguments);
        window.ReactNativeWebView.postMessage(window.location.href);
        return res;
      };
    });
    window.addEventListener('popstate', function () {
      window.ReactNativeWebView.postMessage(window.location.href);
    });
  });
})();`

// mobileOpenWindowBinding receives the URLs of window.open in the iOS WebView.
const mobileOpenWindowBinding = "rcssoTestOpenWindow"

// mobileIOSOpenWindowScript runs in every frame of the iOS WebView: the app
// sets no onOpenWindow, so react-native-webview answers window.open by
// loading the URL in the WebView's own top frame, and the page gets no
// window (apple/RNCWebViewImpl.m createWebViewWithConfiguration returns
// nil). On Android the new window is a WebView nobody sees
// (RNCWebChromeClient.java onCreateWindow); neither shows a pop-up.
const mobileIOSOpenWindowScript = `window.open = function (url) {
  window.` + mobileOpenWindowBinding + `(String(new URL(url, window.location.href)));
  return null;
};`

// mobileAppScript is the iframe branch of the app's
// onNavigationStateChange, run in the app's own JavaScript (a blank tab),
// returning what the app would do: {kind: 'none' | 'try-iframe-login' |
// 'login', resume}. It throws where the app throws (a URL that is not valid
// percent-encoding, or a matching URL without JSON after '#'), which the
// test reports as a failure. The app builds the RegExp once per render; its
// 'g' flag keeps no state for these URLs (one line each), as a match is
// then empty and at index 0.
const mobileAppScript = `window.appIframeNavigation = function (server, webViewURL) {
  var url = decodeURIComponent(webViewURL);
  var iframeRedirectRegex = new RegExp('(?=.*(' + server + '))(?=.*(event|loginToken|token))', 'g');
  if (!iframeRedirectRegex.test(url)) return { kind: 'none' };
  var credentials = JSON.parse(url.split('#')[1]);
  switch (credentials.event) {
    case 'try-iframe-login':
      return { kind: 'try-iframe-login' };
    case 'login-with-token':
      return { kind: 'login', resume: credentials.token || credentials.loginToken };
    default:
      return { kind: 'none' };
  }
};`

// mobileAction is what the app does with one URL of the WebView.
type mobileAction struct {
	Kind   string `json:"kind"`
	Resume string `json:"resume"`
}

// mobileSession is the app's login: POST /api/v1/login's data.
type mobileSession struct {
	UserID, Token, Username string
}

// mobileApp is the app, connected to the workspace e.rcURL.
type mobileApp struct {
	e *env
	// ios selects the iOS WebView (user agent, window.open); else Android.
	ios bool
	// server is the app's state.server.server: the workspace URL as the
	// person typed it, without a trailing slash.
	server   string
	settings map[string]any
	http     *http.Client
	// js runs the app's JavaScript (mobileAppScript).
	js context.Context
	// webview is the AuthenticationWebView once open.
	webview context.Context
	// urls are the URLs handed to onNavigationStateChange, in order.
	urls chan string
	// opens are window.open URLs the iOS WebView loads in its top frame.
	opens chan string
	// seen are the URLs the app was handed, for failure messages.
	seen []string
}

// newMobileApp adds the workspace to the app, as handleServerRequest does:
// GET /api/info for the version, then the login settings.
func newMobileApp(e *env) *mobileApp {
	e.t.Helper()
	m := &mobileApp{e: e, server: e.rcURL, http: testHTTPClient(), urls: make(chan string, 1024), opens: make(chan string, 16)}
	var info struct {
		Version string `json:"version"`
	}
	m.getJSON("/api/info", &info)
	keys := []string{"Accounts_iframe_enabled", "Accounts_Iframe_api_url", "Accounts_Iframe_api_method"}
	q := "?_id=" + strings.Join(keys, ",")
	if major, _, _ := strings.Cut(info.Version, "."); mustAtoi(e.t, major) < 7 {
		b, _ := json.Marshal(keys)
		q = `?query={"_id":{"$in":` + string(b) + `}}`
	}
	var res struct {
		Success  bool `json:"success"`
		Settings []struct {
			ID    string `json:"_id"`
			Value any    `json:"value"`
		} `json:"settings"`
	}
	m.getJSON("/api/v1/settings.public"+q, &res)
	m.settings = map[string]any{}
	for _, s := range res.Settings {
		m.settings[s.ID] = s.Value
	}
	m.js = e.browser()
	if err := chromedp.Do(m.js, chromedp.Evaluate[chromedp.Void](mobileAppScript)); err != nil {
		e.t.Fatalf("the app's JavaScript: %v", err)
	}
	return m
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("version part %q: %v", s, err)
	}
	return n
}

// login is the WorkspaceView's Login button: with iframe authentication on,
// the AuthenticationWebView opens the workspace URL in webview (a fresh
// browser context, as the WebView is incognito, unless the test put a
// website session in it first).
func (m *mobileApp) login(webview context.Context) {
	t := m.e.t
	t.Helper()
	if m.settings["Accounts_iframe_enabled"] != true {
		t.Fatalf("the app would show its own login form: settings %v", m.settings)
	}
	m.webview = webview
	ua := mobileAndroidUA
	if m.ios {
		ua = mobileIOSUA
	}
	calls := []func() error{
		func() error {
			_, err := chromedp.Call(webview, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua})
			return err
		},
		func() error {
			_, err := chromedp.Call(webview, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 412, Height: 915, DeviceScaleFactor: 1, Mobile: true})
			return err
		},
		func() error {
			_, err := chromedp.Call(webview, runtime.AddBinding, runtime.AddBindingParams{Name: mobileBridgeBinding})
			return err
		},
		func() error {
			_, err := chromedp.Call(webview, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: mobileWebViewScript})
			return err
		},
	}
	if m.ios {
		calls = append(calls, func() error {
			_, err := chromedp.Call(webview, runtime.AddBinding, runtime.AddBindingParams{Name: mobileOpenWindowBinding})
			return err
		}, func() error {
			_, err := chromedp.Call(webview, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: mobileIOSOpenWindowScript})
			return err
		})
	}
	for _, c := range calls {
		if err := c(); err != nil {
			t.Fatalf("setting up the WebView: %v", err)
		}
	}
	var top string // the top frame's id
	push := func(u string) {
		select {
		case m.urls <- u:
		default:
			t.Errorf("the app fell behind the WebView's events")
		}
	}
	err := chromedp.Listen(webview, func(ev any) {
		switch ev := ev.(type) {
		case *page.EventFrameNavigated:
			if ev.Frame.ParentID == "" {
				top = string(ev.Frame.ID)
				push(ev.Frame.URL + ev.Frame.URLFragment)
			}
		case *page.EventNavigatedWithinDocument:
			if string(ev.FrameID) == top {
				push(ev.URL)
			}
		case *runtime.EventBindingCalled:
			if ev.Name == mobileOpenWindowBinding {
				select {
				case m.opens <- ev.Payload:
				default:
					t.Errorf("too many window.open calls")
				}
				return
			}
			if ev.Name != mobileBridgeBinding {
				return
			}
			var msg struct {
				URL string `json:"url"`
			}
			if json.Unmarshal([]byte(ev.Payload), &msg) == nil {
				push(msg.URL) // onMessage={({nativeEvent}) => onNavigationStateChange(nativeEvent)}
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(webview, chromedp.Navigate(m.server)); err != nil {
		t.Fatalf("opening the workspace in the WebView: %v", err)
	}
}

// waitLogin runs the app until it logs in: each URL of the WebView goes
// through onNavigationStateChange; a token restarts the 3 s debounce, after
// which the app logs in with the last one and closes the WebView. It fails
// the test if that takes more than 20 s.
func (m *mobileApp) waitLogin() mobileSession {
	t := m.e.t
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	var debounce <-chan time.Time
	var resume string
	for {
		select {
		case u := <-m.urls:
			m.seen = append(m.seen, u)
			act, err := chromedp.Run(m.js, chromedp.Evaluate[mobileAction](fmt.Sprintf("appIframeNavigation(%s, %s)", jsQuote(m.server), jsQuote(u))))
			if err != nil {
				t.Fatalf("the app's onNavigationStateChange threw on %q: %v", u, err)
			}
			switch act.Kind {
			case "login":
				resume = act.Resume
				debounce = time.After(mobileDebounce)
			case "try-iframe-login":
				if s, ok := m.tryIframeLogin(); ok {
					return s
				}
			}
		case u := <-m.opens:
			// [webView loadRequest:navigationAction.request]
			if err := chromedp.Do(m.webview, chromedp.Navigate(u)); err != nil {
				t.Fatalf("the iOS WebView loading window.open's %s: %v", u, err)
			}
		case <-debounce:
			m.screenshot("mobile-" + strings.ReplaceAll(t.Name(), "/", "-") + ".png")
			s, err := m.restLogin(resume)
			if err != nil {
				t.Fatalf("the app's login with the token it caught: %v", err)
			}
			return s
		case <-deadline.C:
			t.Fatalf("the app caught no token within 20 s; the WebView's URLs it saw: %q", m.seen)
		}
	}
}

// tryIframeLogin is the app's tryLogin: its own fetch of the API URL (no
// WebView cookies: they stay in the incognito WebView), no status check.
func (m *mobileApp) tryIframeLogin() (mobileSession, bool) {
	api, _ := m.settings["Accounts_Iframe_api_url"].(string)
	method, _ := m.settings["Accounts_Iframe_api_method"].(string)
	req, err := http.NewRequestWithContext(m.e.t.Context(), method, api, nil)
	if err != nil {
		return mobileSession{}, false
	}
	req.Header.Set("User-Agent", mobileNativeUA)
	resp, err := m.http.Do(req)
	if err != nil {
		return mobileSession{}, false
	}
	defer resp.Body.Close()
	var data struct{ Login, LoginToken string }
	if json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&data) != nil {
		return mobileSession{}, false
	}
	resume := data.Login
	if resume == "" {
		resume = data.LoginToken
	}
	if resume == "" {
		return mobileSession{}, false
	}
	s, err := m.restLogin(resume)
	return s, err == nil
}

// restLogin is sdk.login({resume}): POST <server>/api/v1/login.
func (m *mobileApp) restLogin(resume string) (mobileSession, error) {
	body, _ := json.Marshal(map[string]string{"resume": resume})
	req, err := http.NewRequestWithContext(m.e.t.Context(), http.MethodPost, m.server+"/api/v1/login", strings.NewReader(string(body)))
	if err != nil {
		return mobileSession{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", mobileNativeUA)
	resp, err := m.http.Do(req)
	if err != nil {
		return mobileSession{}, err
	}
	defer resp.Body.Close()
	var res struct {
		Status string `json:"status"`
		Data   struct {
			UserID    string `json:"userId"`
			AuthToken string `json:"authToken"`
			Me        struct {
				Username string `json:"username"`
			} `json:"me"`
		} `json:"data"`
		Message string `json:"message"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&res); err != nil {
		return mobileSession{}, err
	}
	if resp.StatusCode != http.StatusOK || res.Status != "success" {
		return mobileSession{}, fmt.Errorf("status %d: %s", resp.StatusCode, res.Message)
	}
	return mobileSession{UserID: res.Data.UserID, Token: res.Data.AuthToken, Username: res.Data.Me.Username}, nil
}

// me is GET /api/v1/me with the session's token: the username Rocket.Chat
// serves to the app from then on.
func (m *mobileApp) me(s mobileSession) string {
	t := m.e.t
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, m.server+"/api/v1/me", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", s.Token)
	req.Header.Set("X-User-Id", s.UserID)
	resp, err := m.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var me struct {
		Username string `json:"username"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&me) != nil {
		t.Fatalf("GET /api/v1/me with the app's token: status %d", resp.StatusCode)
	}
	return me.Username
}

func (m *mobileApp) getJSON(path string, v any) {
	t := m.e.t
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, m.server+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", mobileNativeUA)
	resp, err := m.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(v) != nil {
		t.Fatalf("GET %s: status %d", path, resp.StatusCode)
	}
}

// screenshot saves the WebView's page as it is when the app takes the
// token, into $E2E_SCREENSHOTS when that names a directory.
func (m *mobileApp) screenshot(name string) {
	dir := os.Getenv("E2E_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(m.webview, chromedp.CaptureScreenshot())
	if err != nil {
		m.e.t.Errorf("screenshot: %v", err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		m.e.t.Errorf("screenshot: %v", err)
	}
}

// testHTTPClient reaches the .test host names the way Chromium does here
// (--host-resolver-rules "MAP *.test 127.0.0.1").
func testHTTPClient() *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err == nil && strings.HasSuffix(host, ".test") {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return d.DialContext(ctx, network, addr)
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func jsQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// checkMobileLogin asserts that the app is logged in as username with a
// token Rocket.Chat serves.
func checkMobileLogin(e *env, m *mobileApp, s mobileSession, username string) {
	e.t.Helper()
	u, ok := e.emu.UserByUsername(username)
	if !ok {
		e.t.Fatalf("no Rocket.Chat user %s", username)
	}
	if s.Username != username || s.UserID != u.ID {
		e.t.Fatalf("the app logged in as %q (%s), want %s (%s)", s.Username, s.UserID, username, u.ID)
	}
	if got := m.me(s); got != username {
		e.t.Fatalf("GET /api/v1/me with the app's token: %q, want %s", got, username)
	}
}

// A person who is not logged in on the website taps Login in the app: the
// workspace page in the WebView shows the IFrame URL inside Rocket.Chat,
// the person logs in there, the IFrame URL posts the token to the workspace
// window, the app's injected script turns it into the URL's fragment, and
// the app logs in with it.
func TestMobileAppIframeURLLogin(t *testing.T) {
	// 6.x: the app asks settings.public with ?query=; 7.0 on with ?_id=.
	for _, profile := range []string{"6.x", "9.0"} {
		t.Run(profile, func(t *testing.T) {
			e := newEnv(t, envOptions{profile: profile})
			m := newMobileApp(e)
			webview := e.browser()
			m.login(webview)
			e.waitChat(webview, "iframe")
			if _, err := e.iframeEval(webview, "#rc-login-iframe", `document.readyState === "complete" && !!document.getElementById("username") && "ready"`); err != nil {
				t.Fatal(err)
			}
			m.screenshot("mobile-" + strings.ReplaceAll(t.Name(), "/", "-") + "-form.png")
			e.loginInIframe(webview, "alice", e.password)
			s := m.waitLogin()
			checkMobileLogin(e, m, s, "alice")
			// The app and the web client inside its WebView share one token.
			if u, _ := e.emu.UserByUsername("alice"); u.ResumeTokens != 1 {
				t.Fatalf("Rocket.Chat holds %d tokens for alice, want 1", u.ResumeTokens)
			}
		})
	}
}

// A person whose website session the WebView already holds (an app older
// than its incognito WebView of 2025-08 keeps rcsso's cookie from the last
// login; an identity source may need no cookie) taps Login. The API URL
// would log in only the web client inside the WebView, so it sends the app's
// WebView to the IFrame URL, whose hand-over the app catches; a browser
// still gets the token from the API URL at once.
func TestMobileAppWebsiteSession(t *testing.T) {
	e := newEnv(t, envOptions{})
	m := newMobileApp(e)
	webview := e.browser()
	e.websiteLogin(webview)
	m.login(webview)
	s := m.waitLogin()
	checkMobileLogin(e, m, s, "alice")
	// Nobody typed anything: the IFrame URL recognised the person.
	if shown, _ := chromedp.Run(webview, chromedp.Evaluate[bool](`window.__rcemu.events.some(ev => ev.type === "iframe-shown")`)); !shown {
		t.Fatal("the WebView's web client never showed the IFrame URL")
	}

	browser := e.browser()
	e.websiteLogin(browser)
	if err := chromedp.Do(browser, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(browser, "logged-in")
	if shown, _ := chromedp.Run(browser, chromedp.Evaluate[bool](`window.__rcemu.events.some(ev => ev.type === "iframe-shown")`)); shown {
		t.Fatal("a browser with a website session was sent to the IFrame URL")
	}
}

// An identity source with its own login pages (OIDC) in the app: a pop-up
// cannot work in its WebView (iOS loads it in place of the workspace page,
// with no opener; Android shows it nowhere), so the IFrame URL's button takes
// the whole WebView to the provider and back to the workspace, where the
// IFrame URL hands the token over. The "log in in a new window" fallback is
// not offered.
func TestMobileAppOIDC(t *testing.T) {
	p := startOIDCProvider(t)
	e := newEnv(t, envOptions{identity: []config.IdentitySource{
		{Type: "oidc", Name: "idp", Options: map[string]any{"label": "Log in with Example ID", "issuer": p.Issuer(), "client_id": p.ClientID, "client_secret": p.ClientSecret}},
		{Type: "local"},
	}})
	p.QueueUser(oidcUser{})
	m := newMobileApp(e)
	m.ios = true
	webview := e.browser()
	m.login(webview)
	e.waitChat(webview, "iframe")
	if _, err := e.iframeEval(webview, "#rc-login-iframe", `document.readyState === "complete" && !!document.getElementById("login-idp") && "ready"`); err != nil {
		t.Fatal(err)
	}
	if offered, err := e.iframeEval(webview, "#rc-login-iframe", `String(!!document.getElementById("login-window-box"))`); err != nil || offered != "false" {
		t.Fatalf("the IFrame URL offers the new-window login in the app (%s, %v)", offered, err)
	}
	e.clickInIframe(webview, "#rc-login-iframe", "#login-idp")
	s := m.waitLogin()
	checkMobileLogin(e, m, s, "jane.doe")
}
