package app

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/rcemu"
)

// Access policy (identity[i].allow): a person the source recognises but
// the policy refuses gets no Rocket.Chat account and no token; the API URL
// answers 403 and the IFrame URL says so. Groups come from the source
// (here the proxy's groups header); e-mail domains count only when the
// source vouches for the address.
func TestAccessPolicy(t *testing.T) {
	emu, cfg := emulated(t, rcemu.Config{Profile: "8.x", CreateTokensSecret: "s"})
	cfg.Identity = []config.IdentitySource{{Type: "header",
		Allow: config.SourceAllow{Groups: []string{"staff"}, EmailDomains: []string{"example.com"}},
		Options: map[string]any{"user_header": "X-Forwarded-User", "email_header": "X-Forwarded-Email",
			"groups_header": "X-Forwarded-Groups", "trusted_proxies": []string{"192.0.2.1"}}}}
	a := build(t, cfg)
	call := func(path, user, email, groups string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", path, nil)
		if path == "/login" {
			r = httptest.NewRequest("GET", path, nil)
			r.Header.Set("Sec-Fetch-Dest", "iframe")
		}
		r.RemoteAddr = "192.0.2.1:1234"
		r.Header.Set("Origin", cfg.RocketChat.URL)
		r.Header.Set("X-Forwarded-User", user)
		if email != "" {
			r.Header.Set("X-Forwarded-Email", email)
		}
		if groups != "" {
			r.Header.Set("X-Forwarded-Groups", groups)
		}
		w := httptest.NewRecorder()
		a.Handler.ServeHTTP(w, r)
		return w
	}
	if w := call("/api/rocketchat/token", "olga", "", "sales, staff"); w.Code != 200 || token(w) == "" {
		t.Fatalf("a member of staff: %d %s", w.Code, w.Body)
	}
	for _, c := range []struct{ user, email, groups string }{
		{"pete", "", "sales"},
		{"quinn", "", ""},
		{"rita", "rita@example.com", ""}, // the header source does not vouch for e-mails by default
		{"sam", "sam@example.com.evil.test", "Staff"},
	} {
		w := call("/api/rocketchat/token", c.user, c.email, c.groups)
		if w.Code != http.StatusForbidden || token(w) != "" || !strings.Contains(w.Body.String(), "do not have access to the chat") {
			t.Errorf("%s: %d %s, want 403 and no token", c.user, w.Code, w.Body)
		}
		if w := call("/login", c.user, c.email, c.groups); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "No access to the chat") {
			t.Errorf("%s on the IFrame URL: %d", c.user, w.Code)
		}
		if _, ok := emu.UserByUsername(c.user); ok {
			t.Errorf("%s got a Rocket.Chat account", c.user)
		}
	}
	// A person who loses the group loses the chat, cached token or not.
	if w := call("/api/rocketchat/token", "olga", "", "sales"); w.Code != http.StatusForbidden {
		t.Fatalf("olga after leaving staff: %d", w.Code)
	}
}

// The allow block is checked at start-up: a malformed e-mail domain names
// the key.
func TestAccessPolicyConfig(t *testing.T) {
	_, cfg := emulated(t, rcemu.Config{Profile: "8.x", CreateTokensSecret: "s"})
	cfg.Identity[0].Allow.EmailDomains = []string{"@example.com"}
	if err := Validate(cfg); err == nil || !strings.Contains(err.Error(), "identity[0].allow.email_domains") {
		t.Fatalf("Validate = %v", err)
	}
}
