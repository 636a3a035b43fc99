package app

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/testing/ldaptest"
)

// postLogin submits the IFrame URL's login form from client address ip.
func postLogin(a *App, ip, username, password string) *httptest.ResponseRecorder {
	form := url.Values{"username": {username}, "password": {password}}
	r := httptest.NewRequest("POST", "/login", strings.NewReader(form.Encode()))
	r.RemoteAddr = ip + ":40000"
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	a.Handler.ServeHTTP(w, r)
	return w
}

// A configured ldap source (type: ldap, next to local accounts) logs a
// directory user in through the IFrame URL's form against a real slapd,
// and the chat gets their directory name and e-mail (email_verified: the
// directory vouches for it); the login form's failure limits apply (6
// wrong passwords for one user from one client: 429); a directory that is
// down shows the form again with 502.
func TestLDAPLoginForm(t *testing.T) {
	srv := ldaptest.Start(t)
	emu, cfg := emulated(t, rcemu.Config{CreateTokensSecret: "s"})
	cfg.Identity = []config.IdentitySource{{Type: "local"}, {Type: "ldap", Name: "corp", Options: map[string]any{
		"url": srv.URL(), "start_tls": true, "tls": map[string]any{"ca_file": srv.CAFile()},
		"bind_dn": ldaptest.BindDN, "bind_password": ldaptest.BindPassword, "user_base_dn": ldaptest.PeopleDN,
		"email_verified": true,
	}}}
	a := build(t, cfg)
	alice := ldaptest.PersonByUID("alice")

	w := postLogin(a, "198.51.100.10", "alice", alice.Password)
	var session *http.Cookie
	for _, c := range w.Result().Cookies() {
		if strings.Contains(c.Name, "session") && c.Value != "" {
			session = c
		}
	}
	if w.Code != http.StatusOK || session == nil {
		t.Fatalf("alice's directory password: %d, cookie %v\n%s", w.Code, session, w.Body)
	}
	// The session from the directory login is a website session: the API
	// URL knows alice.
	r := httptest.NewRequest("POST", "/api/rocketchat/token", nil)
	r.Header.Set("Origin", a.Config.RocketChat.URL)
	r.AddCookie(session)
	w = httptest.NewRecorder()
	a.Handler.ServeHTTP(w, r)
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "loginToken") {
		t.Fatalf("API URL after the directory login: %d %s", w.Code, w.Body)
	}
	u, ok := emu.UserByUsername("alice")
	if !ok || u.Name != alice.CN || len(u.Emails) != 1 || u.Emails[0].Address != alice.Mail {
		t.Fatalf("Rocket.Chat user: %+v (found %v)", u, ok)
	}

	for i := range 5 {
		if w := postLogin(a, "198.51.100.11", "bob", "guess"); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i+1, w.Code)
		}
	}
	w = postLogin(a, "198.51.100.11", "bob", ldaptest.PersonByUID("bob").Password)
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("sixth attempt for bob from one client: %d, want 429 with Retry-After", w.Code)
	}
	// Bob from his own client is not locked out.
	if w := postLogin(a, "198.51.100.12", "bob", ldaptest.PersonByUID("bob").Password); w.Code != http.StatusOK {
		t.Fatalf("bob from another client: %d", w.Code)
	}

	srv.Stop()
	w = postLogin(a, "198.51.100.13", "carol", ldaptest.PersonByUID("carol").Password)
	body := w.Body.String()
	if w.Code != http.StatusBadGateway || !strings.Contains(body, `id="login-form"`) || !strings.Contains(body, "try again shortly") {
		t.Fatalf("directory down: %d\n%s", w.Code, body)
	}
}

// The directory's groups decide access (identity[i].allow.groups): a
// member of staff gets chat after the login form, a person in no group
// sees the IFrame URL's refusal and gets no Rocket.Chat account. With
// group_search the same holds (groups found by searching).
func TestLDAPGroupsDecideAccess(t *testing.T) {
	srv := ldaptest.Start(t)
	for _, groups := range []map[string]any{nil, {"base_dn": ldaptest.GroupsDN}} {
		emu, cfg := emulated(t, rcemu.Config{CreateTokensSecret: "s"})
		opts := map[string]any{"url": srv.URL(), "bind_dn": ldaptest.BindDN, "bind_password": ldaptest.BindPassword,
			"user_base_dn": ldaptest.PeopleDN}
		if groups != nil {
			opts["group_search"] = groups
		}
		cfg.Identity = []config.IdentitySource{{Type: "ldap", Name: "corp", Allow: config.SourceAllow{Groups: []string{"staff"}}, Options: opts}}
		a := build(t, cfg)
		if w := postLogin(a, "198.51.100.20", "bob", ldaptest.PersonByUID("bob").Password); w.Code != http.StatusOK {
			t.Fatalf("bob (staff), group_search %v: %d %s", groups, w.Code, w.Body)
		}
		if _, ok := emu.UserByUsername("bob"); !ok {
			t.Fatalf("bob (staff) has no Rocket.Chat account")
		}
		w := postLogin(a, "198.51.100.20", "carol", ldaptest.PersonByUID("carol").Password)
		if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "No access to the chat") {
			t.Fatalf("carol (no group), group_search %v: %d %s", groups, w.Code, w.Body)
		}
		if _, ok := emu.UserByUsername("carol"); ok {
			t.Fatal("carol got a Rocket.Chat account")
		}
	}
}
