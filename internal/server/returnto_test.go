package server

import (
	"html"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/header"
)

const testPublicURL = "http://sso.example.test"

// allowedTestOrigins are the origins newTestServer allows as return_to.
var allowedTestOrigins = map[string]bool{testPublicURL: true, rcOrigin: true, "http://www.example.test": true}

// returnToCases are return_to values and what the filter makes of them: an
// absolute URL on an allowed origin, or "" for refused. The hostile ones
// are known open-redirect payloads; a browser resolves each as commented.
var returnToCases = []struct{ in, want string }{
	{"/chat", testPublicURL + "/chat"},
	{"http://www.example.test/home", "http://www.example.test/home"},
	{rcOrigin + "/home", rcOrigin + "/home"},
	{"HTTP://WWW.Example.TEST:80/a b?q=1 2#f g", "http://www.example.test/a%20b?q=1%202#f%20g"},
	{"/a/../b/./c?x=1#y", testPublicURL + "/b/c?x=1#y"},
	{" \t/chat\n", testPublicURL + "/chat"},
	{"chat", testPublicURL + "/chat"},
	{"?x=1", testPublicURL + "/?x=1"},
	{"//www.example.test/ok", "http://www.example.test/ok"},
	{"///www.example.test/ok", "http://www.example.test/ok"},
	{"http:/chat", testPublicURL + "/chat"},                                      // same scheme, no "//": a path on rcsso
	{"http:evil.test", testPublicURL + "/evil.test"},                             // likewise
	{`http://www.example.test\@evil.test`, "http://www.example.test/@evil.test"}, // "\" is "/": the host is www
	{"/%2F%2Fevil.test", testPublicURL + "/%2F%2Fevil.test"},                     // %2F is not a slash
	{"/%5Cevil.test", testPublicURL + "/%5Cevil.test"},                           // nor %5C a backslash
	{"/x?to=\\\\evil.test", testPublicURL + "/x?to=%5C%5Cevil.test"},             // a query keeps "\"
	{"/\u2215evil.test", testPublicURL + "/%E2%88%95evil.test"},                  // division slash
	{"http://ｗｗｗ.example.test/x", "http://www.example.test/x"},                   // IDNA maps full-width letters
	{"http://www.example.test/<script>\"'`", "http://www.example.test/%3Cscript%3E%22%27%60"},

	// Issue 8: "/./\evil.test" is the path //evil.test on rcsso; http.Redirect
	// used to clean it to "/\evil.test", which browsers read as //evil.test.
	{`/./\evil.test`, testPublicURL + "//evil.test"},

	{"", ""},
	{`/\evil.test`, ""},     // → //evil.test
	{`\\evil.test`, ""},     // → //evil.test
	{`\/evil.test`, ""},     // → //evil.test
	{`/\/evil.test`, ""},    // → ///evil.test
	{"/\t/evil.test", ""},   // the tab is dropped → //evil.test
	{"/\n/evil.test", ""},   // likewise a newline
	{"\x00//evil.test", ""}, // leading C0 controls are dropped
	{" //evil.test", ""},    // and spaces
	{"//evil.test", ""},     // scheme-relative
	{"///evil.test", ""},    // any number of slashes
	{"https:evil.test", ""}, // another scheme without "//" is still an authority
	{"https:/evil.test", ""},
	{`https:\\evil.test`, ""},
	{"HtTpS://evil.test", ""},
	{"http://evil.test", ""},
	{"http:///evil.test", ""},
	{"javascript:alert(1)", ""},
	{"JaVaScRiPt:alert(1)", ""},
	{" javascript:alert(1)", ""},
	{"java\tscript:alert(1)", ""}, // tabs are dropped inside the scheme too
	{"data:text/html,<script>alert(1)</script>", ""},
	{"ftp://www.example.test/", ""},
	{"http://www.example.test@evil.test/", ""}, // user info: the host is evil
	{"http://evil.test@www.example.test/", ""}, // user info is refused anyway
	{"http://www.example.test:@evil.test/", ""},
	{"http://www.example.test%2F@evil.test/", ""},
	{`http://evil.test\@www.example.test/`, ""}, // "\" is "/": the host is evil
	{"http://evil.test#@www.example.test/", ""},
	{"http://evil.test?@www.example.test/", ""},
	{"http://www.example.test.evil.test/", ""},
	{"http://evil.test/http://www.example.test", ""},
	{"http://evil。test/", ""},          // ideographic full stop
	{"http://ｅｖｉｌ.test/", ""},          // full-width letters
	{"http://xn--80ak6aa92e.com/", ""}, // punycode
	{"http://[::1]/", ""},
	{"http://0x7f.1/", ""},
	{"http://www.example.test:8080/", ""}, // another port
	{"https://www.example.test/", ""},     // another scheme
	{"http://www.example.test./", ""},     // trailing dot: another host to a browser
	{"/" + strings.Repeat("a", 2048), ""}, // too long
	{"/" + strings.Repeat("a", 2038), ""}, // too long with the origin
	{"/%zz", ""},                          // malformed escape
}

func TestSafeReturnTo(t *testing.T) {
	s, _, _ := newTestServer(t)
	for _, c := range returnToCases {
		if got := s.safeReturnTo(c.in); got != c.want {
			t.Errorf("safeReturnTo(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// browserTarget is an independent reading of where a browser goes for
// ref on a page at base: Go's net/url after removing what browsers drop
// (leading and trailing C0 controls and spaces, tabs and newlines
// anywhere) and reading "\" as "/". ok is false when net/url cannot parse
// it.
func browserTarget(base *url.URL, ref string) (*url.URL, bool) {
	ref = strings.TrimFunc(ref, func(r rune) bool { return r <= ' ' })
	ref = strings.NewReplacer("\t", "", "\n", "", "\r", "", `\`, "/").Replace(ref)
	u, err := url.Parse(ref)
	if err != nil {
		return nil, false
	}
	return base.ResolveReference(u), true
}

// originOf is u's origin: lower-case scheme and host, no default or
// empty port.
func originOf(u *url.URL) string {
	scheme, host := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p, err := strconv.Atoi(u.Port()); err == nil && !(scheme == "http" && p == 80) && !(scheme == "https" && p == 443) {
		host += ":" + strconv.Itoa(p)
	}
	return scheme + "://" + host
}

// locationSafe is the alphabet of the filter's output: printable ASCII
// without space, backslash, quotes, angle brackets and the other
// characters browsers treat differently.
var locationSafe = regexp.MustCompile(`^https?://[a-z0-9.\-\[\]:]+/[A-Za-z0-9\-._~!$&'()*+,;=:@/?%#]*$`)

// checkTarget fails unless a browser on page would follow loc to an
// allowed origin, without user info.
func checkTarget(t *testing.T, what, page, loc string) {
	t.Helper()
	base, _ := url.Parse(page)
	u, ok := browserTarget(base, loc)
	if !ok || u.User != nil || !allowedTestOrigins[originOf(u)] {
		t.Errorf("%s: a browser would go to %q (from %q), not an allowed origin", what, u, loc)
	}
	if !locationSafe.MatchString(loc) {
		t.Errorf("%s: %q is not an absolute URL in the safe alphabet", what, loc)
	}
}

var (
	hiddenReturnTo = regexp.MustCompile(`name="return_to" value="([^"]*)"`)
	islandReturnTo = regexp.MustCompile(`"returnTo":"((?:[^"\\]|\\.)*)"`)
)

// checkResponse checks the Location and every return_to the page carries
// (the form's hidden field, the hand-over data that login.js navigates
// to).
func checkResponse(t *testing.T, what string, w interface {
	Result() *http.Response
}, body string) {
	t.Helper()
	resp := w.Result()
	if loc := resp.Header.Get("Location"); loc != "" {
		checkTarget(t, what+" Location", testPublicURL+"/login", loc)
	}
	for _, m := range hiddenReturnTo.FindAllStringSubmatch(body, -1) {
		if v := html.UnescapeString(m[1]); v != "" {
			checkTarget(t, what+" form return_to", testPublicURL+"/login", v)
		}
	}
	for _, m := range islandReturnTo.FindAllStringSubmatch(body, -1) {
		checkTarget(t, what+" hand-over returnTo", testPublicURL+"/login", m[1])
	}
}

// Issue 8 item 4: every endpoint that takes a return_to sends the browser
// only to an allowed origin, for every known open-redirect payload.
func TestReturnToEndpointsHostile(t *testing.T) {
	s, _, _ := newTestServer(t)
	// A password source that does not hash: this test is about redirects.
	s.o.Identity = identity.Chain{
		header.New(header.Options{UserHeader: "X-Forwarded-User", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}}),
		&fakePassword{good: "password123"},
	}
	form := map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
	for _, c := range returnToCases {
		q := url.QueryEscape(c.in)
		w := do(s, "GET", "/login?return_to="+q, map[string]string{"X-Forwarded-User": "alice"}, "")
		checkResponse(t, "GET /login (logged in) "+q, w, w.Body.String())
		if c.want != "" && (w.Code != http.StatusSeeOther || w.Header().Get("Location") != c.want) {
			t.Errorf("GET /login %q: %d Location %q, want 303 to %q", c.in, w.Code, w.Header().Get("Location"), c.want)
		}
		w = do(s, "GET", "/login?return_to="+q, nil, "")
		checkResponse(t, "GET /login (form) "+q, w, w.Body.String())
		w = do(s, "POST", "/login", form, "username=alice&password=password123&return_to="+q)
		checkResponse(t, "POST /login "+q, w, w.Body.String())
		if c.want != "" && w.Header().Get("Location") != c.want {
			t.Errorf("POST /login %q: %d Location %q, want %q", c.in, w.Code, w.Header().Get("Location"), c.want)
		}
		w = do(s, "POST", "/logout", form, "return_to="+q)
		checkResponse(t, "POST /logout "+q, w, w.Body.String())
		w = do(s, "GET", "/logout?return_to="+q, nil, "")
		checkResponse(t, "GET /logout "+q, w, w.Body.String())
	}
}

// FuzzReturnTo: whatever the filter accepts, a browser follows to an
// allowed origin; the output is absolute, in a safe alphabet, and a fixed
// point of the filter; and a value that net/url (read as a browser reads
// it) places on a foreign host is refused.
func FuzzReturnTo(f *testing.F) {
	for _, c := range returnToCases {
		f.Add(c.in)
	}
	pub, _ := url.Parse(testPublicURL)
	filter := ReturnToFilter(pub, rcOrigin, []string{"http://www.example.test"})
	f.Fuzz(func(t *testing.T, raw string) {
		out := filter(raw)
		if out == "" {
			return
		}
		checkTarget(t, "filter("+strconv.Quote(raw)+")", testPublicURL+"/login", out)
		if again := filter(out); again != out {
			t.Errorf("filter(%q) = %q, but filter of that = %q", raw, out, again)
		}
		if u, ok := browserTarget(pub, raw); ok && u.Host != "" && !strings.ContainsFunc(u.Host, func(r rune) bool { return r >= 0x80 }) && !allowedTestOrigins[originOf(u)] {
			t.Errorf("filter(%q) = %q, but net/url reads the input as %q", raw, out, u)
		}
	})
}
