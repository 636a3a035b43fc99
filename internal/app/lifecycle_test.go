package app

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/rcemu"
)

// adminREST calls the emulator's REST API as its admin.
func adminREST(t *testing.T, emu *rcemu.Server, cfg config.Config, method, path, body string) {
	t.Helper()
	r, _ := http.NewRequest(method, cfg.RocketChat.URL+path, strings.NewReader(body))
	r.Header.Set("X-User-Id", emu.AdminID())
	r.Header.Set("X-Auth-Token", "pat")
	r.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}

// iframeURL is the IFrame URL as Rocket.Chat frames it, for a person the
// trusted proxy vouches for.
func iframeURL(a *App, user string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", "/login", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	r.Header.Set("X-Forwarded-User", user)
	r.Header.Set("Sec-Fetch-Dest", "iframe")
	w := httptest.NewRecorder()
	a.Handler.ServeHTTP(w, r)
	return w
}

// Issue 9, item 4: when the Rocket.Chat user rcsso created is deleted (or
// Rocket.Chat is restored from an older backup), the person is provisioned
// again: no dead token forever, no "you logged out of the chat", no 502.
func TestVanishedUserIsProvisionedAgain(t *testing.T) {
	emu, cfg := emulated(t, rcemu.Config{Profile: "8.x", CreateTokensSecret: "s"})
	a := build(t, cfg)
	first := visit(a, "ivy", "")
	oldUser := userOf(t, emu, token(first))
	adminREST(t, emu, cfg, "POST", "/api/v1/users.delete", `{"userId":"`+oldUser+`"}`)
	// Rocket.Chat's client shows the IFrame URL once the dead token fails.
	w := iframeURL(a, "ivy")
	if w.Code != 200 || strings.Contains(w.Body.String(), "logged out of the chat") {
		t.Fatalf("IFrame URL after the user was deleted: %d %s", w.Code, w.Body)
	}
	next := visit(a, "ivy", "")
	newUser := userOf(t, emu, token(next))
	if next.Code != 200 || newUser == "" || newUser == oldUser {
		t.Fatalf("API URL after re-provisioning: %d %s (user %q, old %q)", next.Code, next.Body, newUser, oldUser)
	}
	if u, ok := emu.UserByID(newUser); !ok || u.Username != "ivy" {
		t.Fatalf("new user %+v", u)
	}
}

// The same after the person had already been marked "logged out of the
// chat": "Log in to the chat again" used to fail with 502 forever.
func TestVanishedUserAfterChatLogout(t *testing.T) {
	emu, cfg := emulated(t, rcemu.Config{Profile: "8.x", CreateTokensSecret: "s"})
	a := build(t, cfg)
	first := visit(a, "jo", "")
	oldUser := userOf(t, emu, token(first))
	// A chat-side logout, noticed by the IFrame URL.
	adminREST(t, emu, cfg, "POST", "/api/v1/users.logout", `{"userId":"`+oldUser+`"}`)
	if w := iframeURL(a, "jo"); !strings.Contains(w.Body.String(), "logged out of the chat") {
		t.Fatalf("IFrame URL after a chat logout: %d %s", w.Code, w.Body)
	}
	adminREST(t, emu, cfg, "POST", "/api/v1/users.delete", `{"userId":"`+oldUser+`"}`)
	r := httptest.NewRequest("POST", "/login/resume", strings.NewReader("client="))
	r.RemoteAddr = "192.0.2.1:1234"
	r.Header.Set("X-Forwarded-User", "jo")
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set("Sec-Fetch-Site", "same-origin")
	w := httptest.NewRecorder()
	a.Handler.ServeHTTP(w, r)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "loginToken") {
		t.Fatalf("Log in to the chat again: %d %s", w.Code, w.Body)
	}
}

// A deactivated Rocket.Chat user: the IFrame URL says so (403), rcsso does
// not offer a login that cannot work.
func TestDeactivatedUserIsToldSo(t *testing.T) {
	emu, cfg := emulated(t, rcemu.Config{Profile: "8.x", CreateTokensSecret: "s"})
	a := build(t, cfg)
	uid := userOf(t, emu, token(visit(a, "kim", "")))
	adminREST(t, emu, cfg, "POST", "/api/v1/users.setActiveStatus", `{"userId":"`+uid+`","activeStatus":false}`)
	w := iframeURL(a, "kim")
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "deactivated") {
		t.Fatalf("IFrame URL for a deactivated user: %d %s", w.Code, w.Body)
	}
	if v := visit(a, "kim", ""); v.Code != http.StatusForbidden || token(v) != "" {
		t.Fatalf("API URL for a deactivated user: %d %s", v.Code, v.Body)
	}
}
