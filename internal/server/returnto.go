package server

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/idna"
)

// maxReturnTo is the longest return_to accepted, in bytes.
const maxReturnTo = 2048

// ReturnToFilter returns the open-redirect filter shared by every handler
// that takes a return_to (GET and POST /login, GET and POST /logout, the
// OIDC source's login and logout).
//
// It reads the value as a browser would (WHATWG URL Standard, for the
// special schemes http and https): leading and trailing C0 controls and
// spaces are dropped and tabs and newlines removed anywhere; a backslash
// before the query is a slash; "scheme:" without "//" is relative when
// the scheme is rcsso's own and an authority otherwise; any number of
// slashes may start an authority; the reference is resolved against
// publicURL (dot segments removed) and the host lower-cased and mapped
// with IDNA. It accepts the result only on an allowed origin: rcsso's
// (publicURL), Rocket.Chat's, or a website origin; only http and https, no
// user info. It returns the absolute URL to send the browser to, built
// from the allowed origin as configured, the path, query and fragment
// percent-encoded down to unambiguous ASCII, so that it means the same to
// every browser and no later cleaning changes it; or "" when the value or
// that URL is empty, longer than maxReturnTo, unparsable or elsewhere. Write it to
// Location with redirect, not http.Redirect.
func ReturnToFilter(publicURL *url.URL, rocketChatOrigin string, websiteOrigins []string) func(string) string {
	base := &url.URL{Scheme: strings.ToLower(publicURL.Scheme), Host: publicURL.Host, Path: strings.TrimRight(publicURL.Path, "/") + "/"}
	allowed := map[string]bool{}
	for _, o := range append([]string{base.Scheme + "://" + base.Host, rocketChatOrigin}, websiteOrigins...) {
		if u, err := url.Parse(o); err == nil {
			if origin, ok := canonicalOrigin(u); ok {
				allowed[origin] = true
			}
		}
	}
	return func(raw string) string {
		u, ok := resolveReturnTo(base, raw)
		if !ok {
			return ""
		}
		origin, ok := canonicalOrigin(u)
		if !ok || !allowed[origin] {
			return ""
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		out := origin + escapeLocation(path)
		if u.RawQuery != "" {
			out += "?" + escapeLocation(u.RawQuery)
		}
		if f := u.EscapedFragment(); f != "" {
			out += "#" + escapeLocation(f)
		}
		if len(out) > maxReturnTo {
			return ""
		}
		return out
	}
}

// resolveReturnTo parses raw as a browser parses a URL relative to base
// (see ReturnToFilter) and returns the absolute result.
func resolveReturnTo(base *url.URL, raw string) (*url.URL, bool) {
	if raw == "" || len(raw) > maxReturnTo {
		return nil, false
	}
	s := strings.Trim(raw, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
	s = strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(s)
	// The query and fragment keep their backslashes; before them a
	// backslash is a slash (special schemes only, which is all we accept).
	pre, post := s, ""
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		pre, post = s[:i], s[i:]
	}
	pre = strings.ReplaceAll(pre, `\`, "/")
	var ref string
	if scheme, rest, ok := cutScheme(pre); ok {
		if scheme != "http" && scheme != "https" {
			return nil, false // javascript:, data:, ftp:, …
		}
		if scheme == base.Scheme && !strings.HasPrefix(rest, "//") {
			ref = relativeRef(rest) // "http:/x" on an http rcsso is "/x"
		} else {
			ref = scheme + "://" + strings.TrimLeft(rest, "/") // "https:evil", "http:///evil"
		}
	} else if strings.HasPrefix(pre, "//") {
		ref = base.Scheme + "://" + strings.TrimLeft(pre, "/")
	} else {
		ref = relativeRef(pre)
	}
	u, err := url.Parse(ref + post)
	if err != nil {
		return nil, false
	}
	u = base.ResolveReference(u)
	if u.User != nil || u.Opaque != "" {
		return nil, false
	}
	return u, true
}

// relativeRef makes a path-relative reference whose first segment has a
// colon ("1a:b") parse as a path, as browsers read it.
func relativeRef(p string) string {
	if p == "" || strings.HasPrefix(p, "/") {
		return p
	}
	return "./" + p
}

// cutScheme splits a leading URL scheme (ALPHA *( ALPHA / DIGIT / "+" /
// "-" / "." ) ":", WHATWG scheme state) off s, lower-cased.
func cutScheme(s string) (scheme, rest string, ok bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		case i > 0 && c == ':':
			return strings.ToLower(s[:i]), s[i+1:], true
		default:
			return "", s, false
		}
	}
	return "", s, false
}

// canonicalOrigin is u's origin as browsers serialise it: lower-case
// scheme (http or https only) and ASCII host, no default port.
func canonicalOrigin(u *url.URL) (string, bool) {
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", false
	}
	host := strings.ToLower(u.Hostname())
	if !isASCII(host) {
		var err error
		if host, err = idna.Lookup.ToASCII(host); err != nil {
			return "", false
		}
	}
	if host == "" {
		return "", false
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n > 65535 {
			return "", false
		}
		if !(scheme == "http" && n == 80) && !(scheme == "https" && n == 443) {
			host += ":" + strconv.Itoa(n)
		}
	}
	return scheme + "://" + host, true
}

// escapeLocation percent-encodes every byte of an already escaped path,
// query or fragment that is not unreserved, a sub-delimiter, ":", "@",
// "/", "?" or the start of a "%XX" escape: no spaces, quotes, angle
// brackets, backslashes, controls or non-ASCII bytes remain.
func escapeLocation(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-._~!$&'()*+,;=:@/?", c) >= 0:
			b.WriteByte(c)
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
	}
	return b.String()
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// redirect sends the browser to loc, a URL from the return_to filter,
// exactly as given: http.Redirect would clean a relative path, which is
// how "/./\evil.com" once became "Location: /\evil.com".
func redirect(w http.ResponseWriter, loc string, code int) {
	w.Header().Set("Location", loc)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
}
