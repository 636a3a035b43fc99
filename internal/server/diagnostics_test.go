package server

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/doctor"
)

const diagToken = "operator-token-0123456789abcdefghij"

// diagServer is a test server whose deployment checks (Options.Doctor)
// count their runs and whose diagnostics clock the test moves.
func diagServer(t *testing.T, token string) (*Server, func() int64, *time.Time) {
	t.Helper()
	s, _, _ := newTestServer(t)
	var n atomic.Int64
	o := s.o
	o.DiagnosticsToken = token
	o.Doctor = func(context.Context) doctor.Report {
		n.Add(1)
		return doctor.Report{Results: []doctor.Result{
			{Check: "rocketchat", Status: doctor.OK, Message: "Rocket.Chat 7.4.1 answers"},
			{Check: "iframe-login", Status: doctor.OK, Message: "API URL and IFrame URL point at rcsso"},
			{Check: "framing", Status: doctor.Fail, Message: "Rocket.Chat answers X-Frame-Options: sameorigin", Fix: "Iframe Restrict Access: off"},
		}}
	}
	s = New(o)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.diag.now = func() time.Time { return now }
	return s, n.Load, &now
}

func getDiagnostics(s *Server, hdr map[string]string, query string) *httptest.ResponseRecorder {
	return do(s, "GET", "/diagnostics"+query, hdr, "")
}

// Anyone may open /diagnostics but sees only their own part: no Rocket.Chat
// version or settings, and no Rocket.Chat call is made for them.
func TestDiagnosticsAnonymousSeesOnlyTheirPart(t *testing.T) {
	s, calls, _ := diagServer(t, diagToken)
	for range 5 {
		w := getDiagnostics(s, map[string]string{"X-Forwarded-User": "alice"}, "")
		body := w.Body.String()
		if w.Code != 200 || !strings.Contains(body, "logged in on the website as alice") || !strings.Contains(body, "API URL calls from this browser") ||
			!strings.Contains(body, "site administrator only") {
			t.Fatalf("%d %s", w.Code, body)
		}
		for _, secret := range []string{"7.4.1", "Accounts_", "iframe-login", "X-Frame-Options", "framing"} {
			if strings.Contains(body, secret) {
				t.Fatalf("an anonymous visitor sees %q:\n%s", secret, body)
			}
		}
	}
	if n := calls(); n != 0 {
		t.Fatalf("anonymous diagnostics ran the checks %d times", n)
	}
}

// The operator's token shows the deployment checks (rcsso doctor's); one
// run is shared for 30 s across requests, concurrent ones included.
func TestDiagnosticsOperatorAndCache(t *testing.T) {
	s, calls, now := diagServer(t, diagToken)
	op := map[string]string{"Authorization": "Bearer " + diagToken}
	w := getDiagnostics(s, op, "")
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, "Rocket.Chat 7.4.1 answers") || !strings.Contains(body, "API URL and IFrame URL point at rcsso") ||
		!strings.Contains(body, "X-Frame-Options: sameorigin") || !strings.Contains(body, "Iframe Restrict Access: off") || strings.Contains(body, "site administrator only") {
		t.Fatalf("operator view: %d %s", w.Code, body)
	}
	first := calls()
	if first != 1 {
		t.Fatalf("one operator view ran the checks %d times", first)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if w := getDiagnostics(s, op, ""); w.Code != 200 || !strings.Contains(w.Body.String(), "Rocket.Chat 7.4.1") {
				t.Errorf("%d", w.Code)
			}
		})
	}
	wg.Wait()
	if n := calls(); n != first {
		t.Fatalf("21 operator views within 30 s ran the checks %d times, want %d", n, first)
	}
	w = getDiagnostics(s, map[string]string{"Authorization": "Bearer " + diagToken, "Accept": "application/json"}, "")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" || !strings.Contains(w.Body.String(), `{"name":"framing","state":"fail","detail":"Rocket.Chat answers X-Frame-Options: sameorigin","fix":"Iframe Restrict Access: off"}`) {
		t.Fatalf("JSON view: %d %s", w.Code, w.Body)
	}
	*now = now.Add(31 * time.Second)
	getDiagnostics(s, op, "")
	if n := calls(); n != 2*first {
		t.Fatalf("after 31 s: %d runs, want %d (checked again)", n, 2*first)
	}
}

// Hostile operator credentials: wrong tokens, other schemes, tokens in the
// URL, a token when none is configured. None gets the Rocket.Chat part or
// makes a Rocket.Chat call.
func TestDiagnosticsHostileCredentials(t *testing.T) {
	s, calls, _ := diagServer(t, diagToken)
	for _, c := range []struct {
		name, auth, query string
		status            int
	}{
		{"wrong token", "Bearer operator-token-0123456789abcdefghiX", "", 403},
		{"prefix of the token", "Bearer " + diagToken[:20], "", 403},
		{"token plus more", "Bearer " + diagToken + "x", "", 403},
		{"empty bearer", "Bearer ", "", 403},
		{"Basic scheme", "Basic " + diagToken, "", 403},
		{"no scheme", diagToken, "", 403},
		{"token in the query", "", "?token=" + diagToken, 400},
		{"access_token in the query", "", "?access_token=" + diagToken, 400},
	} {
		hdr := map[string]string{}
		if c.auth != "" {
			hdr["Authorization"] = c.auth
		}
		w := getDiagnostics(s, hdr, c.query)
		if w.Code != c.status || strings.Contains(w.Body.String(), "7.4.1") {
			t.Errorf("%s: %d %s", c.name, w.Code, w.Body)
		}
	}
	if w := getDiagnostics(s, map[string]string{"Authorization": "bearer " + diagToken}, ""); w.Code != 200 || !strings.Contains(w.Body.String(), "7.4.1") {
		t.Errorf("lower-case scheme: %d", w.Code)
	}
	calls0 := calls()
	if calls0 != 1 {
		t.Fatalf("%d runs of the checks, want only the one of the right token", calls0)
	}
	none, calls2, _ := diagServer(t, "")
	w := getDiagnostics(none, map[string]string{"Authorization": "Bearer anything-at-all-anything-at-all"}, "")
	if w.Code != 403 || !strings.Contains(w.Body.String(), "no diagnostics.token is configured") || calls2() != 0 {
		t.Fatalf("no token configured: %d %s, %d runs", w.Code, w.Body, calls2())
	}
}
