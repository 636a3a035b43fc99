package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/header"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/websession"
)

// Passwords of the native-login tests: each must never appear in a log
// line or in a page.
const (
	nlAdminPW = "Adm1n-SECRET-pw-4c7e"
	nlTinaPW  = "T1na-SECRET-pw-9a2f"
	nlEmmaPW  = "Emm4-SECRET-pw-1b8d"
	nlIvanPW  = "Iv4n-SECRET-pw-6d3a"
)

var nlSecrets = []string{nlAdminPW, nlTinaPW, nlEmmaPW, nlIvanPW}

// syncLog is a concurrency-safe log buffer.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// nativeEnv is rcsso with website.native_login in front of an emulated
// Rocket.Chat with 2FA: admin (no 2FA), tina (TOTP), emma (e-mail codes),
// ivan (deactivated).
type nativeEnv struct {
	s          *Server
	emu        *rcemu.Server
	minter     *countingMinter
	logs       *syncLog
	tinaSecret string
	codes      []string // 2FA codes sent: never logged either
}

func newNativeEnv(t *testing.T, emuCfg rcemu.Config) *nativeEnv {
	t.Helper()
	emuCfg.AdminPassword = nlAdminPW
	emuCfg.TwoFactor = true
	emuCfg.BcryptCost = bcrypt.MinCost
	emu, err := rcemu.New(emuCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	ts := httptest.NewServer(emu.Handler())
	t.Cleanup(ts.Close)
	env := &nativeEnv{emu: emu, logs: &syncLog{}, minter: &countingMinter{}, tinaSecret: rcemu.NewTOTPSecret()}
	for _, u := range []rcemu.NewUser{
		{Username: "tina", Email: "tina@example.test", Verified: true, Password: nlTinaPW, TOTPSecret: env.tinaSecret},
		{Username: "emma", Email: "emma@example.test", Verified: true, Password: nlEmmaPW, Email2FA: true},
		{Username: "ivan", Email: "ivan@example.test", Verified: true, Password: nlIvanPW, Inactive: true},
	} {
		if _, err := emu.AddUser(u); err != nil {
			t.Fatal(err)
		}
	}
	env.s = newNativeServer(t, ts.URL, env.logs, env.minter)
	t.Cleanup(func() { env.checkNoSecrets(t, "the log", env.logs.String()) })
	return env
}

// newNativeServer is rcsso with native login on, Rocket.Chat at rcURL, a
// header identity source and everything logged into logs.
func newNativeServer(t testing.TB, rcURL string, logs *syncLog, m mint.Minter) *Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st := memory.New()
	seal, _ := sealer.New(make([]byte, 32))
	b := mint.NewBroker(st, seal, m, linkProv{}, mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour}, nil)
	sessions := websession.New(st, websession.Options{CookieName: "rcsso_session", SameSite: http.SameSiteLaxMode, TTL: time.Hour})
	rc, err := rocketchat.New(rocketchat.Options{BaseURL: rcURL, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := url.Parse("http://sso.example.test")
	return New(Options{
		PublicURL:        pub,
		RocketChatOrigin: rcOrigin,
		WebsiteName:      "Example",
		Identity:         identity.Chain{header.New(header.Options{UserHeader: "X-Forwarded-User"})},
		Sessions:         sessions,
		Broker:           b,
		Store:            st,
		RC:               rc,
		Logger:           log,
		Audit:            audit.New(logs), // the audit lines go through checkNoSecrets too
		NativeLogin:      true,
	})
}

func (e *nativeEnv) checkNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range append(nlSecrets, e.codes...) {
		if strings.Contains(s, sec) {
			t.Errorf("%s contains the secret %q", what, sec)
		}
	}
}

// post submits the native login form from the frame of Rocket.Chat's page
// (Fetch Metadata of a form submission in an iframe), from address ip.
func nativePost(s *Server, ip string, form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/login/rocketchat", strings.NewReader(form.Encode()))
	r.RemoteAddr = ip + ":40000"
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	r.Header.Set("Sec-Fetch-Mode", "navigate")
	r.Header.Set("Sec-Fetch-Dest", "iframe")
	for k, v := range hdr {
		if v == "" {
			r.Header.Del(k)
		} else {
			r.Header.Set(k, v)
		}
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

func (e *nativeEnv) post(t *testing.T, form url.Values) *httptest.ResponseRecorder {
	t.Helper()
	w := nativePost(e.s, "198.51.100.7", form, nil)
	e.checkNoSecrets(t, "the page", w.Body.String())
	if c := w.Header().Get("Set-Cookie"); c != "" {
		t.Errorf("the native login set a cookie: %s", c)
	}
	return w
}

var islandRe = regexp.MustCompile(`(?s)<script type="application/json" id="rcsso-data">(.*?)</script>`)

// handedToken returns the resume token the page hands to Rocket.Chat.
func handedToken(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	m := islandRe.FindStringSubmatch(w.Body.String())
	if m == nil {
		t.Fatalf("no data island: %s", w.Body)
	}
	var d handoffData
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &d); err != nil {
		t.Fatalf("data island %q: %v", m[1], err)
	}
	return d.LoginToken
}

func wantPage(t *testing.T, w *httptest.ResponseRecorder, status int, parts ...string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("status %d, want %d: %s", w.Code, status, w.Body)
	}
	body := html.UnescapeString(w.Body.String())
	for _, p := range parts {
		if !strings.Contains(body, p) {
			t.Fatalf("page lacks %q: %s", p, body)
		}
	}
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// The native login is off by default: no section on the IFrame URL, and
// its form's address does not exist.
func TestNativeLoginOffByDefault(t *testing.T) {
	s, _, _ := newTestServer(t)
	w := do(s, "GET", "/login", map[string]string{"Accept": "text/html"}, "")
	if w.Code != 200 || strings.Contains(w.Body.String(), "native-login") || strings.Contains(w.Body.String(), "Rocket.Chat account") {
		t.Fatalf("IFrame URL with native login off: %d %s", w.Code, w.Body)
	}
	w = nativePost(s, "198.51.100.7", form("username", "admin", "password", "x"), nil)
	if w.Code != http.StatusNotFound {
		t.Fatalf("POST /login/rocketchat with native login off: %d", w.Code)
	}
}

// With native login on, the IFrame URL shows a separate, collapsed
// section that posts to /login/rocketchat.
func TestNativeLoginSection(t *testing.T) {
	e := newNativeEnv(t, rcemu.Config{DisableRateLimit: true})
	w := do(e.s, "GET", "/login", map[string]string{"Accept": "text/html"}, "")
	wantPage(t, w, 200, `<details class="native-login" id="native-login">`, "Log in with a Rocket.Chat account",
		`action="/login/rocketchat"`, `autocomplete="section-rocketchat current-password"`)
	if strings.Contains(w.Body.String(), `id="native-login" open`) {
		t.Fatal("the section is not collapsed")
	}
	if !strings.Contains(w.Body.String(), "Not logged in") {
		t.Fatalf("the website part is gone: %s", w.Body)
	}
}

// An admin without 2FA logs in and the page hands over their own
// Rocket.Chat session; rcsso starts no website session and mints nothing.
func TestNativeLoginNoTwoFactor(t *testing.T) {
	e := newNativeEnv(t, rcemu.Config{DisableRateLimit: true})
	w := e.post(t, form("username", "admin", "password", nlAdminPW))
	wantPage(t, w, 200, "Signing you in to the chat as <strong>admin</strong>")
	tok := handedToken(t, w)
	if uid, ok := e.emu.UserIDByResumeToken(tok); !ok || uid != e.emu.AdminID() {
		t.Fatalf("the token opens %q (%v), want the admin", uid, ok)
	}
	if e.minter.n.Load() != 0 {
		t.Fatal("the broker minted")
	}
	if !strings.Contains(e.logs.String(), "native Rocket.Chat login") {
		t.Fatalf("no log line: %s", e.logs)
	}
	// The e-mail address works as the user name too.
	w = e.post(t, form("username", "admin@rcemu.invalid", "password", nlAdminPW))
	if uid, _ := e.emu.UserIDByResumeToken(handedToken(t, w)); uid != e.emu.AdminID() {
		t.Fatal("login by e-mail address failed")
	}
}

// TOTP: the first step asks for the code (with the password again, which
// the page does not contain); a wrong code is refused and counted; the
// right one logs in.
func TestNativeLoginTOTP(t *testing.T) {
	e := newNativeEnv(t, rcemu.Config{DisableRateLimit: true})
	w := e.post(t, form("username", "tina", "password", nlTinaPW))
	wantPage(t, w, 200, "authenticator app", `id="native-code"`, `value="tina"`, `name="method" value="totp"`)
	if strings.Contains(w.Body.String(), "loginToken") {
		t.Fatal("a token before the code")
	}
	code, _ := rcemu.TOTPCode(e.tinaSecret, time.Now())
	wrong := "000000"
	if wrong == code {
		wrong = "111111"
	}
	e.codes = append(e.codes, code)
	w = e.post(t, form("username", "tina", "password", nlTinaPW, "code", wrong, "method", "totp"))
	wantPage(t, w, http.StatusForbidden, "That code is wrong, expired or already used.", `id="native-code"`)
	w = e.post(t, form("username", "tina", "password", "wrong-password", "code", code, "method", "totp"))
	wantPage(t, w, http.StatusForbidden, "Wrong Rocket.Chat user name or password.")
	w = e.post(t, form("username", "tina", "password", nlTinaPW, "code", code[:3]+" "+code[3:], "method", "totp"))
	wantPage(t, w, 200, "Signing you in to the chat as <strong>tina</strong>")
	uid, _ := e.emu.UserIDByResumeToken(handedToken(t, w))
	if uid == "" {
		t.Fatal("the token opens no account")
	}
	// The audit log: the wrong code and the wrong password, then who was
	// given a chat session.
	logs := e.logs.String()
	for _, want := range []string{
		`"event":"login_failed","outcome":"refused","username":"tina","client_ip":"198.51.100.7"`,
		`"reason":"native login: wrong, expired or used two-factor code"`,
		`"reason":"native login: wrong user name or password"`,
		`"event":"native_login","outcome":"ok","rc_user_id":"` + uid + `","username":"tina"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("the audit log lacks %s:\n%s", want, logs)
		}
	}
}

// E-mail 2FA: Rocket.Chat mails a code at the first step; the person
// enters it (as mailed, 123-456) with the password; "E-mail me a new code"
// checks the password again and has Rocket.Chat send another.
func TestNativeLoginEmailCode(t *testing.T) {
	e := newNativeEnv(t, rcemu.Config{DisableRateLimit: true})
	w := e.post(t, form("username", "emma", "password", nlEmmaPW))
	wantPage(t, w, 200, "Rocket.Chat has e-mailed you a code", "Code from the e-mail", `id="native-resend"`)
	first, ok := e.emu.LastEmailCode("emma@example.test")
	if !ok {
		t.Fatal("no code mailed")
	}
	e.codes = append(e.codes, first)
	// Resend without the password: refused, nothing sent.
	w = e.post(t, form("username", "emma", "resend", "1", "method", "email", "code", ""))
	wantPage(t, w, http.StatusBadRequest)
	w = e.post(t, form("username", "emma", "password", nlEmmaPW, "resend", "1", "method", "email", "code", ""))
	wantPage(t, w, 200, "Rocket.Chat has e-mailed you a new code")
	if n := len(e.emu.Mailbox()); n != 2 {
		t.Fatalf("%d mails, want 2", n)
	}
	second, _ := e.emu.LastEmailCode("emma@example.test")
	e.codes = append(e.codes, second)
	w = e.post(t, form("username", "emma", "password", nlEmmaPW, "code", second[:3]+"-"+second[3:], "method", "email"))
	wantPage(t, w, 200, "Signing you in to the chat as <strong>emma</strong>")
	// The code is used up.
	w = e.post(t, form("username", "emma", "password", nlEmmaPW, "code", second, "method", "email"))
	wantPage(t, w, http.StatusForbidden, "That code is wrong, expired or already used.")
}

// Refusals: wrong password and unknown user read the same; a deactivated
// user is told so; malformed fields never reach Rocket.Chat.
func TestNativeLoginRefusals(t *testing.T) {
	e := newNativeEnv(t, rcemu.Config{DisableRateLimit: true})
	wrong := e.post(t, form("username", "admin", "password", "not-the-password"))
	unknown := e.post(t, form("username", "nobody-here", "password", "not-the-password"))
	wantPage(t, wrong, http.StatusForbidden, "Wrong Rocket.Chat user name or password.")
	wantPage(t, unknown, http.StatusForbidden, "Wrong Rocket.Chat user name or password.")
	strip := regexp.MustCompile(`value="[^"]*"|<code>[^<]*</code>`)
	if strip.ReplaceAllString(wrong.Body.String(), "") != strip.ReplaceAllString(unknown.Body.String(), "") {
		t.Fatal("the pages for a wrong password and an unknown user differ")
	}
	w := e.post(t, form("username", "ivan", "password", nlIvanPW))
	wantPage(t, w, http.StatusForbidden, "This Rocket.Chat account is deactivated")

	before := e.emu.Stats().MethodLoginCalls
	for name, f := range map[string]url.Values{
		"very long user name":   form("username", strings.Repeat("a", 300), "password", "x"),
		"control character":     form("username", "ad\x00min", "password", "x"),
		"line break":            form("username", "admin\r\nX-Injected: 1", "password", "x"),
		"invalid UTF-8":         form("username", "ad\xffmin", "password", "x"),
		"very long password":    form("username", "admin", "password", strings.Repeat("p", 2000)),
		"no password":           form("username", "admin", "password", ""),
		"very long code":        form("username", "admin", "password", "x", "code", strings.Repeat("1", 64)),
		"code with punctuation": form("username", "admin", "password", "x", "code", "12<3>"),
		"no user name":          form("password", "x"),
	} {
		w := e.post(t, f)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "Enter your Rocket.Chat user name") {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
		if strings.Contains(w.Body.String(), "X-Injected") || strings.Contains(w.Body.String(), "\x00") {
			t.Errorf("%s: the hostile value is echoed", name)
		}
	}
	big := nativePost(e.s, "198.51.100.7", form("username", "admin", "password", strings.Repeat("p", 20<<10)), nil)
	if big.Code != http.StatusBadRequest {
		t.Errorf("20 KiB form: %d", big.Code)
	}
	if n := e.emu.Stats().MethodLoginCalls; n != before {
		t.Fatalf("malformed forms reached Rocket.Chat: %d calls", n-before)
	}
}

// The failed-login limiter counts wrong passwords and wrong codes per
// (Rocket.Chat user name, client); a refused attempt never reaches
// Rocket.Chat; a right password that only lacks its code is not a failure.
func TestNativeLoginLimiter(t *testing.T) {
	e := newNativeEnv(t, rcemu.Config{DisableRateLimit: true})
	for range 5 {
		w := e.post(t, form("username", "admin", "password", "guess"))
		wantPage(t, w, http.StatusForbidden, "Wrong Rocket.Chat user name or password.")
	}
	calls := e.emu.Stats().MethodLoginCalls
	w := e.post(t, form("username", "admin", "password", nlAdminPW))
	wantPage(t, w, http.StatusTooManyRequests, "Too many failed attempts")
	if w.Header().Get("Retry-After") == "" || e.emu.Stats().MethodLoginCalls != calls {
		t.Fatalf("refused attempt: Retry-After %q, reached Rocket.Chat %v", w.Header().Get("Retry-After"), e.emu.Stats().MethodLoginCalls != calls)
	}
	// Another client is not affected.
	w2 := nativePost(e.s, "203.0.113.9", form("username", "admin", "password", nlAdminPW), nil)
	if w2.Code != 200 || handedToken(t, w2) == "" {
		t.Fatalf("another client: %d", w2.Code)
	}
	// Wrong TOTP codes count too.
	for range 5 {
		w := e.post(t, form("username", "tina", "password", nlTinaPW, "code", "000000", "method", "totp"))
		if w.Code != http.StatusForbidden && w.Code != 200 { // 200: 000000 happened to be right
			t.Fatalf("wrong code: %d", w.Code)
		}
	}
	w = e.post(t, form("username", "tina", "password", nlTinaPW, "code", "000000", "method", "totp"))
	wantPage(t, w, http.StatusTooManyRequests)
	// A right password without its code is not counted: many first steps
	// of another 2FA user pass.
	for range 8 {
		w := nativePost(e.s, "192.0.2.50", form("username", "emma", "password", nlEmmaPW), nil)
		e.checkNoSecrets(t, "the page", w.Body.String())
		wantPage(t, w, 200, `id="native-code"`)
	}
}

// Rocket.Chat's own limit on its login method is shared by every native
// login (one rcsso address): its refusal is a 429 with Retry-After and a
// clear message.
func TestNativeLoginRocketChatRateLimit(t *testing.T) {
	e := newNativeEnv(t, rcemu.Config{})
	for i := range 5 {
		w := nativePost(e.s, fmt.Sprintf("198.51.100.%d", 20+i), form("username", "admin", "password", nlAdminPW), nil)
		if w.Code != 200 {
			t.Fatalf("login %d: %d %s", i+1, w.Code, w.Body)
		}
	}
	w := e.post(t, form("username", "admin", "password", nlAdminPW))
	wantPage(t, w, http.StatusTooManyRequests, "Too many people are logging in to Rocket.Chat right now. Try again in")
	if ra := w.Header().Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After = %q", ra)
	}
}

// CSRF (http.CrossOriginProtection) and Fetch Metadata: a cross-site post
// and a scripted fetch are refused; a top-level tab is told to use the chat.
func TestNativeLoginRequestChecks(t *testing.T) {
	e := newNativeEnv(t, rcemu.Config{DisableRateLimit: true})
	f := form("username", "admin", "password", nlAdminPW)
	cases := []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"cross-site form post", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.test"}, http.StatusForbidden},
		{"cross-origin without Fetch Metadata", map[string]string{"Sec-Fetch-Site": "", "Origin": "http://evil.test"}, http.StatusForbidden},
		{"scripted fetch", map[string]string{"Sec-Fetch-Mode": "cors"}, http.StatusForbidden},
		{"top-level tab", map[string]string{"Sec-Fetch-Dest": "document"}, http.StatusBadRequest},
		{"from Rocket.Chat's origin", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": rcOrigin}, http.StatusOK},
		{"no Fetch Metadata (plain http)", map[string]string{"Sec-Fetch-Site": "", "Sec-Fetch-Mode": "", "Sec-Fetch-Dest": ""}, http.StatusOK},
	}
	for _, c := range cases {
		w := nativePost(e.s, "198.51.100.7", f, c.hdr)
		if w.Code != c.status {
			t.Errorf("%s: %d, want %d: %s", c.name, w.Code, c.status, w.Body)
		}
		if c.status != http.StatusOK && strings.Contains(w.Body.String(), "loginToken") {
			t.Errorf("%s: a token was handed over", c.name)
		}
	}
}

// fakeREST8 is a Rocket.Chat 8.x without method.callAnon: REST
// /api/v1/login refuses with {"error":"unauthorized"} unless the password
// and code are right.
func fakeREST8(t *testing.T, password, code string) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path != "/api/v1/login" {
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"success":false,"error":"API endpoint does not exist"}`))
			return
		}
		var b map[string]string
		_ = json.NewDecoder(r.Body).Decode(&b)
		if b["password"] == password && b["code"] == code {
			_, _ = w.Write([]byte(`{"status":"success","data":{"userId":"U9","authToken":"tok-U9"},"success":true}`))
			return
		}
		w.WriteHeader(401)
		_, _ = w.Write([]byte(`{"success":false,"error":"unauthorized"}`))
	}))
	t.Cleanup(ts.Close)
	return ts
}

// Where Rocket.Chat does not say why it refused (REST /login of 8.x), the
// form says so and offers the optional code field.
func TestNativeLoginUndisclosedRefusal(t *testing.T) {
	rc := fakeREST8(t, nlAdminPW, "424242")
	logs := &syncLog{}
	s := newNativeServer(t, rc.URL, logs, &countingMinter{})
	w := nativePost(s, "198.51.100.7", form("username", "admin", "password", nlAdminPW), nil)
	wantPage(t, w, http.StatusForbidden, "Rocket.Chat did not accept this login.", `id="native-code"`, "Two-factor code, if your account uses one")
	if strings.Contains(w.Body.String(), nlAdminPW) {
		t.Fatal("the password is in the page")
	}
	w = nativePost(s, "198.51.100.7", form("username", "admin", "password", nlAdminPW, "code", "424242", "method", ""), nil)
	wantPage(t, w, 200)
	if handedToken(t, w) != "tok-U9" {
		t.Fatal("no hand-over")
	}
	if strings.Contains(logs.String(), nlAdminPW) || strings.Contains(logs.String(), "424242") {
		t.Fatal("a secret was logged")
	}
}

// FuzzNativeLoginForm: whatever a visitor posts, the form answers with a
// page (never a 5xx), and never shows the password back.
func FuzzNativeLoginForm(f *testing.F) {
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		msg, _ := json.Marshal(`{"msg":"result","id":"1","error":{"error":401,"reason":"User not found","message":"User not found [401]"}}`)
		_, _ = w.Write([]byte(`{"message":` + string(msg) + `,"success":true}`))
	}))
	defer rc.Close()
	s := newNativeServer(f, rc.URL, &syncLog{}, &countingMinter{})
	for _, seed := range [][4]string{
		{"admin", "password", "", ""},
		{"admin@example.test", "pw", "123-456", "totp"},
		{"<script>alert(1)</script>", "\"><img src=x>", "", "email"},
		{"a\x00b", "p\r\nq", "12 34 56", "password"},
		{strings.Repeat("x", 257), strings.Repeat("y", 1025), strings.Repeat("1", 33), "x"},
		{"ünïcødé", "пароль", "١٢٣", ""},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, username, password, code, method string) {
		pw := "FUZZ-PW:" + password
		w := nativePost(s, "10.1.2.3", form("username", username, "password", pw, "code", code, "method", method), nil)
		if w.Code >= 500 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if strings.Contains(w.Body.String(), pw) || strings.Contains(html.UnescapeString(w.Body.String()), pw) {
			t.Fatal("the password is in the page")
		}
		if w.Code == 200 && strings.Contains(w.Body.String(), "loginToken") {
			t.Fatal("a refused login handed a token over")
		}
	})
}

// The section also sits below the website's own login form, separate
// from it.
func TestNativeLoginSectionBelowWebsiteForm(t *testing.T) {
	s, _, _ := newTestServer(t) // local accounts: the website's form
	s.o.NativeLogin = true
	w := do(s, "GET", "/login", map[string]string{"Accept": "text/html"}, "")
	body := w.Body.String()
	web, native := strings.Index(body, `id="login-form"`), strings.Index(body, `<details class="native-login"`)
	if w.Code != 200 || web < 0 || native < web {
		t.Fatalf("website form at %d, native section at %d: %s", web, native, body)
	}
	if strings.Count(body, "<form") != 2 || strings.Contains(body[web:native], "native-") {
		t.Fatalf("the two forms are not separate: %s", body)
	}
}

// Rocket.Chat down: the form says so (503), and the attempt is not
// counted as a failure.
func TestNativeLoginRocketChatUnreachable(t *testing.T) {
	logs := &syncLog{}
	s := newNativeServer(t, "http://127.0.0.1:1", logs, &countingMinter{})
	for range 6 {
		w := nativePost(s, "198.51.100.7", form("username", "admin", "password", nlAdminPW), nil)
		wantPage(t, w, http.StatusServiceUnavailable, "Rocket.Chat cannot be reached", `id="native-form"`)
	}
	if strings.Contains(logs.String(), nlAdminPW) {
		t.Fatal("the password was logged")
	}
}
