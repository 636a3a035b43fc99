package app

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/rcemu"
)

// readAudit parses the audit log at path, one JSON object per line; every
// line must parse and carry a time, an event and an outcome.
func readAudit(t *testing.T, path string) []audit.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Event
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if e.Time.IsZero() || e.Event == "" || e.Outcome == "" {
			t.Fatalf("audit line without time, event or outcome: %s", sc.Text())
		}
		out = append(out, e)
	}
	return out
}

// find returns the events named event with outcome.
func find(evs []audit.Event, event, outcome string) []audit.Event {
	var out []audit.Event
	for _, e := range evs {
		if e.Event == event && e.Outcome == outcome {
			out = append(out, e)
		}
	}
	return out
}

// Issue 12, audit log: one JSON line per provision, mint, re-validation,
// revoke, logout (website, chat side, webhook), deprovision, refused access
// and failed login, with subject, source, Rocket.Chat user, client IP,
// request id and reason; never a token or a password.
func TestAuditLog(t *testing.T) {
	emu, cfg := emulated(t, rcemu.Config{Profile: "8.x", CreateTokensSecret: "s"})
	cfg.Identity = []config.IdentitySource{{Type: "header", Allow: config.SourceAllow{Groups: []string{"staff"}},
		Options: map[string]any{"user_header": "X-Forwarded-User", "groups_header": "X-Forwarded-Groups",
			"trusted_proxies": []string{"192.0.2.1"}}}, {Type: "local"}}
	cfg.Webhooks.Secret = strings.Repeat("w", 32)
	cfg.TrustedProxies = []string{"192.0.2.1"}
	cfg.Audit.Path = filepath.Join(t.TempDir(), "audit.jsonl")
	a := build(t, cfg)
	call := func(method, path, user, groups string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		r.RemoteAddr = "192.0.2.1:1234"
		r.Header.Set("X-Forwarded-For", "198.51.100.7")
		r.Header.Set("Origin", cfg.RocketChat.URL)
		if path != "/api/rocketchat/token" {
			r.Header.Set("Origin", cfg.PublicURL)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
		}
		if path == "/login" {
			r.Header.Set("Sec-Fetch-Dest", "iframe")
		}
		r.Header.Set("X-Forwarded-User", user)
		r.Header.Set("X-Forwarded-Groups", groups)
		w := httptest.NewRecorder()
		a.Handler.ServeHTTP(w, r)
		return w
	}
	webhook := func(path, body string) {
		t.Helper()
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		mac := hmac.New(sha256.New, []byte(cfg.Webhooks.Secret))
		mac.Write([]byte(ts + "." + body))
		r := httptest.NewRequest("POST", path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-Rcsso-Timestamp", ts)
		r.Header.Set("X-Rcsso-Signature", "v1="+hex.EncodeToString(mac.Sum(nil)))
		w := httptest.NewRecorder()
		a.Handler.ServeHTTP(w, r)
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", path, w.Code, w.Body)
		}
	}

	var secrets []string // what must never be in the audit log
	w := call("POST", "/api/rocketchat/token", "ann", "staff")
	if w.Code != 200 {
		t.Fatalf("ann: %d %s", w.Code, w.Body)
	}
	secrets = append(secrets, token(w))
	annID := userOf(t, emu, token(w))
	if w := call("GET", "/login", "ann", "staff"); w.Code != 200 {
		t.Fatalf("IFrame URL: %d", w.Code)
	}
	if w := call("POST", "/api/rocketchat/token", "bob", "sales"); w.Code != http.StatusForbidden {
		t.Fatalf("bob: %d", w.Code)
	}
	const wrong = "Tr0ub4dor&3-wrong"
	secrets = append(secrets, wrong)
	if w := postLogin(a, "203.0.113.9", "mallory", wrong); w.Code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", w.Code)
	}
	if w := call("POST", "/logout", "ann", "staff"); w.Code != 200 {
		t.Fatalf("logout: %d %s", w.Code, w.Body)
	}
	// Back moments later: rcsso does not mint again within min_interval.
	if w := call("POST", "/api/rocketchat/token", "ann", "staff"); w.Code != http.StatusTooManyRequests && w.Code != http.StatusServiceUnavailable {
		t.Fatalf("ann again: %d %s", w.Code, w.Body)
	}
	webhook("/webhooks/logout", `{"subject":"header:ann"}`)
	webhook("/webhooks/deprovision", `{"subject":"header:ann","action":"deactivate"}`)

	raw, err := os.ReadFile(cfg.Audit.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(string(raw), s) {
			t.Fatalf("the audit log contains a token or password:\n%s", raw)
		}
	}
	evs := readAudit(t, cfg.Audit.Path)
	check := func(what string, got []audit.Event, want func(audit.Event) bool) {
		t.Helper()
		for _, e := range got {
			if want(e) {
				return
			}
		}
		t.Errorf("no %s in the audit log:\n%s", what, raw)
	}
	fromProxyClient := func(e audit.Event) bool { return e.ClientIP == "198.51.100.7" && len(e.RequestID) == 12 }
	check("provision of ann", find(evs, audit.Provision, audit.OK), func(e audit.Event) bool {
		return e.Subject == "header:ann" && e.Source == "header" && e.RCUserID == annID && e.RCUsername == "ann" &&
			strings.Contains(e.Reason, "created") && fromProxyClient(e)
	})
	check("mint for ann", find(evs, audit.Mint, audit.OK), func(e audit.Event) bool {
		return e.Subject == "header:ann" && e.RCUserID == annID && fromProxyClient(e)
	})
	check("re-validation on the IFrame URL", find(evs, audit.Revalidate, audit.OK), func(e audit.Event) bool {
		return e.Subject == "header:ann" && e.RCUserID == annID
	})
	check("bob refused by the access policy", find(evs, audit.Refused, audit.Denied), func(e audit.Event) bool {
		return e.Subject == "header:bob" && e.Reason == "access policy" && fromProxyClient(e)
	})
	check("mallory's failed login", find(evs, audit.LoginFailed, audit.Denied), func(e audit.Event) bool {
		return e.Username == "mallory" && e.ClientIP == "203.0.113.9" && e.Subject == ""
	})
	check("ann's logout", find(evs, audit.Logout, audit.OK), func(e audit.Event) bool {
		return e.Subject == "header:ann" && e.Reason == "logout page"
	})
	check("the revoke of ann's session", find(evs, audit.Revoke, audit.OK), func(e audit.Event) bool {
		return e.Subject == "header:ann" && e.RCUserID == annID && strings.Contains(e.Reason, "Rocket.Chat session ended")
	})
	check("the mint held back", find(evs, audit.Mint, audit.Denied), func(e audit.Event) bool {
		return e.Subject == "header:ann" && strings.Contains(e.Reason, "moments ago")
	})
	check("the logout webhook", find(evs, audit.Logout, audit.OK), func(e audit.Event) bool {
		return e.Subject == "header:ann" && e.Reason == "logout webhook"
	})
	check("the deprovision webhook", find(evs, audit.Deprovision, audit.OK), func(e audit.Event) bool {
		return e.Subject == "header:ann" && e.RCUserID == annID && strings.Contains(e.Reason, "deactivated")
	})
	if n := len(find(evs, audit.Mint, audit.OK)); n != 1 {
		t.Errorf("%d mint events for one token", n)
	}
}

// A chat-side logout (Rocket.Chat no longer accepts the token) is one
// logout event, however often the person comes back before logging in
// again.
func TestAuditChatSideLogout(t *testing.T) {
	emu, cfg := emulated(t, rcemu.Config{Profile: "8.x", CreateTokensSecret: "s"})
	cfg.Audit.Path = filepath.Join(t.TempDir(), "audit.jsonl")
	a := build(t, cfg)
	uid := userOf(t, emu, token(visit(a, "cy", "")))
	adminREST(t, emu, cfg, "POST", "/api/v1/users.logout", `{"userId":"`+uid+`"}`)
	for range 3 {
		if w := iframeURL(a, "cy"); !strings.Contains(w.Body.String(), "logged out of the chat") {
			t.Fatalf("IFrame URL after a chat logout: %d", w.Code)
		}
	}
	evs := readAudit(t, cfg.Audit.Path)
	got := find(evs, audit.Logout, audit.OK)
	if len(got) != 1 || got[0].RCUserID != uid || !strings.Contains(got[0].Reason, "chat-side") {
		t.Fatalf("logout events %+v", got)
	}
}
