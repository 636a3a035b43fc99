package demo

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rcsso/rcsso/internal/identity"
)

func get(t *testing.T, h http.Handler, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	return rec.Result(), rec.Body.String()
}

// The redirect rcsso answers the log-out form with comes back to the site:
// form-action must allow the site itself, or the browser stops there and
// the button looks dead.
func TestSiteCSPAllowsTheLogoutRedirect(t *testing.T) {
	h := Site(SiteOptions{SiteURL: "http://127.0.0.1:8000", RcssoURL: "http://127.0.0.1:8001", RocketChatURL: "http://127.0.0.1:8002"})
	resp, _ := get(t, h, "/")
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "form-action 'self' http://127.0.0.1:8001;") {
		t.Fatalf("CSP %q: form-action must list 'self' and rcsso", csp)
	}
}

// Every page says who is logged in, escaped; nobody, or an rcsso that
// cannot tell, shows "Not logged in" and a log-in link.
func TestSiteShowsWhoIsLoggedIn(t *testing.T) {
	hostile := identity.Identity{Username: "mallory", Name: `<script>alert(1)</script>`, Email: `m"@example.com`}
	for _, tc := range []struct {
		name      string
		id        identity.Identity
		err       error
		want, not []string
	}{
		{"logged in", identity.Identity{Username: "demo", Name: "Demo Visitor", Email: "demo@example.com"}, nil,
			[]string{"Demo Visitor", "demo@example.com", `id="logout"`}, []string{"Not logged in"}},
		{"no display name", identity.Identity{Username: "bob"}, nil, []string{`<b id="who-name">bob</b>`, `id="logout"`}, []string{"who-email"}},
		{"hostile name", hostile, nil, []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "m&#34;@example.com"}, []string{"<script>alert"}},
		{"nobody", identity.Identity{}, identity.ErrNotLoggedIn, []string{"Not logged in", `id="nav-login"`, `id="login"`}, []string{`id="logout"`}},
		{"rcsso cannot tell", identity.Identity{}, errors.New("store down"), []string{"Not logged in (rcsso could not tell"}, []string{`id="logout"`, "store down"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := Site(SiteOptions{SiteURL: "http://127.0.0.1:8000", RcssoURL: "http://127.0.0.1:8001", RocketChatURL: "http://127.0.0.1:8002",
				Visitor: func(*http.Request) (identity.Identity, error) { return tc.id, tc.err }})
			for _, path := range []string{"/", "/chat", "/embed"} {
				_, body := get(t, h, path)
				for _, w := range tc.want {
					if w == `id="login"` && path != "/" {
						continue // the big button is on the home page only
					}
					if !strings.Contains(body, w) {
						t.Errorf("%s lacks %q", path, w)
					}
				}
				for _, n := range tc.not {
					if strings.Contains(body, n) {
						t.Errorf("%s has %q", path, n)
					}
				}
			}
		})
	}
}
