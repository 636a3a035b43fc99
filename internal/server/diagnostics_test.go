package server

import (
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const diagToken = "operator-token-0123456789abcdefghij"

// diagServer is a test server whose Rocket.Chat answers (and counts calls)
// and whose diagnostics clock the test moves.
func diagServer(t *testing.T, token string) (*Server, func() int64, *time.Time) {
	t.Helper()
	s, _, _ := newTestServer(t)
	rc, n := fakeRC(t)
	s.o.RC = rc
	if token != "" {
		o := s.o
		o.DiagnosticsToken = token
		s = New(o)
	}
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
		for _, secret := range []string{"7.4.1", "Accounts_", "Iframe authentication", "X-Frame-Options", "Minting", "Rocket.Chat reachable"} {
			if strings.Contains(body, secret) {
				t.Fatalf("an anonymous visitor sees %q:\n%s", secret, body)
			}
		}
	}
	if n := calls(); n != 0 {
		t.Fatalf("anonymous diagnostics made %d Rocket.Chat calls", n)
	}
}

// The operator's token shows the Rocket.Chat part; Rocket.Chat's answers
// are shared for 30 s across requests, concurrent ones included.
func TestDiagnosticsOperatorAndCache(t *testing.T) {
	s, calls, now := diagServer(t, diagToken)
	op := map[string]string{"Authorization": "Bearer " + diagToken}
	w := getDiagnostics(s, op, "")
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, "version 7.4.1") || !strings.Contains(body, "API URL and IFrame URL point at rcsso") ||
		!strings.Contains(body, "X-Frame-Options: sameorigin") || strings.Contains(body, "site administrator only") {
		t.Fatalf("operator view: %d %s", w.Code, body)
	}
	first := calls()
	if first != 3 {
		t.Fatalf("one operator view made %d Rocket.Chat calls, want 3 (info, settings, framing headers)", first)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if w := getDiagnostics(s, op, ""); w.Code != 200 || !strings.Contains(w.Body.String(), "version 7.4.1") {
				t.Errorf("%d", w.Code)
			}
		})
	}
	wg.Wait()
	if n := calls(); n != first {
		t.Fatalf("21 operator views within 30 s made %d Rocket.Chat calls, want %d", n, first)
	}
	w = getDiagnostics(s, map[string]string{"Authorization": "Bearer " + diagToken, "Accept": "application/json"}, "")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" || !strings.Contains(w.Body.String(), `{"name":"Rocket.Chat reachable","state":"ok","detail":"version 7.4.1"}`) {
		t.Fatalf("JSON view: %d %s", w.Code, w.Body)
	}
	*now = now.Add(31 * time.Second)
	getDiagnostics(s, op, "")
	if n := calls(); n != 2*first {
		t.Fatalf("after 31 s: %d Rocket.Chat calls, want %d (asked again)", n, 2*first)
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
	if calls0 != 3 {
		t.Fatalf("%d Rocket.Chat calls, want only the 3 of the one right token", calls0)
	}
	none, calls2, _ := diagServer(t, "")
	w := getDiagnostics(none, map[string]string{"Authorization": "Bearer anything-at-all-anything-at-all"}, "")
	if w.Code != 403 || !strings.Contains(w.Body.String(), "no diagnostics.token is configured") || calls2() != 0 {
		t.Fatalf("no token configured: %d %s, %d calls", w.Code, w.Body, calls2())
	}
}
