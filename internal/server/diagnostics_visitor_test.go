package server

import (
	"encoding/json"
	"strings"
	"testing"
)

// The visitor part judges this browser's last API URL call without false
// alarms: a trusted-header visitor's call carries no rcsso cookie yet logs
// the chat in, and a visitor who is not logged in has no cookie to send;
// neither is "the browser blocks the cookie as third-party". Only a call
// without the cookie this browser holds is.
func TestDiagnosticsAPICallVerdicts(t *testing.T) {
	s, _, _ := newTestServer(t)
	w := loginFrom(s, "192.0.2.9", "alice", "password123")
	var session string
	for _, c := range w.Result().Cookies() {
		if c.Name == "rcsso_session" {
			session = c.Name + "=" + c.Value
		}
	}
	if session == "" {
		t.Fatalf("no session cookie from the login: %d %v", w.Code, w.Header())
	}
	verdict := func(ua string, apiHdr, diagHdr map[string]string) (int, check) {
		t.Helper()
		h := map[string]string{"Origin": rcOrigin, "User-Agent": ua, "Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "cross-site"}
		for k, v := range apiHdr {
			h[k] = v
		}
		status := do(s, "POST", "/api/rocketchat/token", h, "").Code
		d := map[string]string{"User-Agent": ua, "Accept": "application/json"}
		for k, v := range diagHdr {
			d[k] = v
		}
		var out struct{ Checks []check }
		if err := json.Unmarshal(do(s, "GET", "/diagnostics", d, "").Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		for _, c := range out.Checks {
			if c.Name == "API URL calls from this browser" {
				return status, c
			}
		}
		t.Fatalf("no API URL line: %+v", out.Checks)
		return 0, check{}
	}
	header := map[string]string{"X-Forwarded-User": "bob"}
	if st, c := verdict("header-user", header, header); st != 200 || c.State != "ok" {
		t.Errorf("trusted-header visitor whose chat signed in (API URL %d): %+v", st, c)
	}
	if st, c := verdict("anonymous", nil, nil); st != 401 || c.State == "fail" || c.Fix == "the browser blocks the cookie as third-party: use one site for Rocket.Chat and rcsso, or the host push flow" {
		t.Errorf("visitor not logged in (API URL %d): %+v", st, c)
	}
	cookie := map[string]string{"Cookie": session}
	if st, c := verdict("blocked", nil, cookie); st != 401 || c.State != "fail" {
		t.Errorf("cookie held but withheld from the API URL call (%d): %+v", st, c)
	}
	// (The fake provisioner links everyone to one chat user, so alice's
	// call after bob's is a 409 conflict: not the cookie's fault.)
	if st, c := verdict("first-party", cookie, cookie); c.State == "fail" || !strings.Contains(c.Detail, "with rcsso's cookie") {
		t.Errorf("cookie sent (%d): %+v", st, c)
	}
}
