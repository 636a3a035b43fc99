package doctor

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/rocketchat"
)

func jwt(payload string) string {
	e := base64.RawURLEncoding.EncodeToString
	return e([]byte(`{"alg":"RS256"}`)) + "." + e([]byte(payload)) + ".c2ln"
}

// SupportWindow reads Rocket.Chat Cloud's list like the mobile app
// (major.minor match, exceptions first) and refuses whatever else a
// server may send.
func TestSupportWindow(t *testing.T) {
	list := jwt(`{"timestamp":"2026-01-01T00:00:00Z","versions":[{"version":"7.10.0","expiration":"2026-06-01T00:00:00.000Z"},` +
		`{"version":"8.0.0","expiration":"2026-09-01T00:00:00.000Z"}],"exceptions":{"versions":[{"version":"7.10.5","expiration":"2026-12-01T00:00:00Z"}]}}`)
	for _, c := range []struct {
		server string
		want   string
		found  bool
	}{
		{"8.0.0", "2026-09-01", true},
		{"8.0", "2026-09-01", true}, // recent servers hide the patch level
		{"7.10.3", "2026-12-01", true},
		{"v8.0.1-rc.2", "2026-09-01", true},
		{"6.13.0", "", false},
	} {
		exp, found, err := SupportWindow(list, c.server)
		if err != nil || found != c.found || (found && exp.Format(time.DateOnly) != c.want) {
			t.Errorf("%s: %v %v %v", c.server, exp, found, err)
		}
	}
	for name, tok := range map[string]string{
		"empty":          "",
		"two parts":      "a.b",
		"four parts":     "a.b.c.d",
		"not base64":     "a.!!!.c",
		"not JSON":       jwt("not json"),
		"array":          jwt(`[1,2]`),
		"versions wrong": jwt(`{"versions":"8.0.0"}`),
		"bad expiration": jwt(`{"versions":[{"version":"8.0.0","expiration":"soon"}]}`),
		"huge":           jwt(`{"versions":[],"x":"` + strings.Repeat("a", 70<<10) + `"}`),
	} {
		if _, found, err := SupportWindow(tok, "8.0.0"); err == nil || found {
			t.Errorf("%s: accepted (%v)", name, found)
		}
	}
	for _, v := range []string{"", "eight", "8", "8.x", "99999.0"} {
		if _, _, err := SupportWindow(list, v); err == nil {
			t.Errorf("server version %q accepted", v)
		}
	}
}

func FuzzSupportWindow(f *testing.F) {
	f.Add(jwt(`{"versions":[{"version":"8.0.0","expiration":"2026-09-01T00:00:00Z"}]}`), "8.0.0")
	f.Add("a.b.c", "8.0")
	f.Add(jwt(`{"exceptions":{"versions":[{"version":"8.0","expiration":"x"}]}}`), "8.0.1")
	f.Fuzz(func(t *testing.T, tok, version string) {
		exp, found, err := SupportWindow(tok, version)
		if err != nil && found || !found && !exp.IsZero() {
			t.Fatalf("inconsistent: %v %v %v", exp, found, err)
		}
	})
}

// frame-ancestors as browsers read it, from hostile headers too.
func TestFrameAncestors(t *testing.T) {
	const self = "https://chat.example.test"
	for _, c := range []struct {
		csp    []string
		origin string
		allow  bool
	}{
		{[]string{"frame-ancestors https://www.example.test"}, "https://www.example.test", true},
		{[]string{"frame-ancestors https://www.example.test"}, "https://shop.example.test", false},
		{[]string{"FRAME-ANCESTORS 'self' https://*.example.test"}, "https://shop.example.test", true},
		{[]string{"frame-ancestors https://*.example.test"}, "https://example.test", false},
		{[]string{"frame-ancestors *"}, "https://evil.test", true},
		{[]string{"frame-ancestors 'none'"}, "https://www.example.test", false},
		{[]string{"frame-ancestors"}, "https://www.example.test", false},
		{[]string{"frame-ancestors https:"}, "https://www.example.test", true},
		{[]string{"frame-ancestors http:"}, "https://www.example.test", true},
		{[]string{"frame-ancestors https:"}, "http://www.example.test", false},
		{[]string{"frame-ancestors www.example.test"}, "https://www.example.test", true},
		{[]string{"frame-ancestors www.example.test"}, "http://www.example.test", false},
		{[]string{"frame-ancestors https://www.example.test:8443"}, "https://www.example.test", false},
		{[]string{"frame-ancestors https://www.example.test:*"}, "https://www.example.test:8443", true},
		{[]string{"frame-ancestors https://www.example.test/path/"}, "https://www.example.test", true},
		{[]string{"frame-ancestors 'self'"}, self, true},
		// Two policies: both must allow.
		{[]string{"frame-ancestors *", "frame-ancestors https://shop.example.test"}, "https://www.example.test", false},
		{[]string{"frame-ancestors *, frame-ancestors 'none'"}, "https://www.example.test", false},
		// The first directive counts.
		{[]string{"frame-ancestors https://www.example.test; frame-ancestors 'none'"}, "https://www.example.test", true},
	} {
		lists := frameAncestors(c.csp)
		allow := len(lists) > 0
		for _, l := range lists {
			allow = allow && ancestorAllowed(l, c.origin, self)
		}
		if allow != c.allow {
			t.Errorf("%q for %s: %v, want %v", c.csp, c.origin, allow, c.allow)
		}
	}
	if l := frameAncestors([]string{"frame-ancestors *" + strings.Repeat(" x", maxPolicy)}); len(l) != 0 {
		t.Error("an oversized header was parsed")
	}
	many := make([]string, 100)
	for i := range many {
		many[i] = "frame-ancestors *"
	}
	if l := frameAncestors(many); len(l) != maxHeaders {
		t.Errorf("%d policies read of 100 headers", len(l))
	}
}

func FuzzFrameAncestors(f *testing.F) {
	f.Add("frame-ancestors 'self' https://*.example.test:*", "https://www.example.test")
	f.Add("default-src 'none'; frame-ancestors http: [::1]:80", "http://[::1]")
	f.Add("frame-ancestors *.:", "https://.")
	f.Fuzz(func(t *testing.T, csp, origin string) {
		for _, l := range frameAncestors([]string{csp}) {
			ancestorAllowed(l, origin, "https://chat.example.test")
		}
	})
}

// A hostile or broken Rocket.Chat (settings of the wrong types, an
// endless value, no JSON) gives FAIL lines, never a panic or a false OK.
func TestHostileRocketChatAnswers(t *testing.T) {
	for name, settings := range map[string]string{
		"wrong types": `[{"_id":"Accounts_iframe_enabled","value":"yes"},{"_id":"Accounts_Iframe_api_url","value":42},` +
			`{"_id":"Accounts_iframe_url","value":{"$ne":1}},{"_id":"Accounts_Iframe_api_method","value":["POST"]},` +
			`{"_id":"Iframe_Integration_receive_enable","value":1},{"_id":"Iframe_Integration_receive_origin","value":null}]`,
		"huge value": `[{"_id":"Accounts_iframe_enabled","value":true},{"_id":"Accounts_Iframe_api_url","value":"` + strings.Repeat("x", 100000) + `"}]`,
		"not a list": `"settings"`,
	} {
		rc := hostileRC(t, `{"success":true,"count":1,"settings":`+settings+`}`)
		pub, _ := url.Parse("https://sso.example.test")
		d := Doctor{Target: Target{RC: rc, PublicURL: pub, RocketChatOrigin: "https://chat.example.test", WebsiteOrigins: []string{"https://www.example.test"}},
			Checks: []Check{{Name: "iframe-login", Run: checkIframeLogin}, {Name: "iframe-integration", Run: checkIntegration}, TwoFactor(OAuthLogins)}}
		rep := d.Run(context.Background())
		for _, r := range rep.Results {
			if r.Check == "iframe-login" && r.Status == OK || r.Check == "iframe-integration" && r.Status == OK {
				t.Errorf("%s: %s", name, r)
			}
			if len(r.Message) > 2000 {
				t.Errorf("%s: a %d-byte line", name, len(r.Message))
			}
		}
		if rep.Summary.Fail == 0 {
			t.Errorf("%s: no FAIL:\n%v", name, rep.Results)
		}
	}
}

func hostileRC(t *testing.T, settings string) *rocketchat.Client {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(settings))
	}))
	t.Cleanup(ts.Close)
	rc, err := rocketchat.New(rocketchat.Options{BaseURL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	return rc
}
