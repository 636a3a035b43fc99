package doctor

import (
	"net/url"
	"strings"
)

// maxPolicy bounds the Content-Security-Policy text rcsso parses (16 KiB
// per header, 8 headers).
const (
	maxPolicy  = 16 << 10
	maxHeaders = 8
)

// frameAncestors returns the source lists of the frame-ancestors
// directives of Content-Security-Policy headers (one list per policy that
// has the directive; each must allow a framing page). Policies are
// separated by commas and by repeated headers, directives by ';', names
// are case-insensitive, the first occurrence of a directive counts (CSP
// Level 3 §2.2). Oversized or excess headers are ignored, so a hostile
// header costs bounded work.
func frameAncestors(headers []string) [][]string {
	var out [][]string
	if len(headers) > maxHeaders {
		headers = headers[:maxHeaders]
	}
	for _, h := range headers {
		if len(h) > maxPolicy {
			continue
		}
		for _, policy := range strings.Split(h, ",") {
			for _, d := range strings.Split(policy, ";") {
				f := strings.Fields(d)
				if len(f) == 0 {
					continue
				}
				if strings.EqualFold(f[0], "frame-ancestors") {
					out = append(out, f[1:])
					break
				}
			}
		}
	}
	return out
}

// ancestorAllowed reports whether a frame-ancestors source list lets a
// page of origin (scheme://host[:port]) frame a document of self (the
// framed document's origin): 'none' and an empty list allow nothing; '*'
// any http(s) page; 'self' the same origin; a scheme source ("https:")
// its scheme (http: also https); a host source [scheme://]host[:port]
// with an optional "*." wildcard label and "*" port (CSP Level 3 §6.7.2).
// Paths in host sources are ignored (frame-ancestors matches origins).
func ancestorAllowed(sources []string, origin, self string) bool {
	o, err := url.Parse(origin)
	if err != nil || o.Host == "" {
		return false
	}
	s, _ := url.Parse(self)
	for _, src := range sources {
		src = strings.ToLower(src)
		switch {
		case src == "'none'":
			return false
		case src == "*":
			if o.Scheme == "http" || o.Scheme == "https" {
				return true
			}
		case src == "'self'":
			if s != nil && sameOrigin(o, s) {
				return true
			}
		case strings.HasSuffix(src, ":") && !strings.Contains(src, "/"):
			sch := strings.TrimSuffix(src, ":")
			if o.Scheme == sch || sch == "http" && o.Scheme == "https" {
				return true
			}
		case !strings.HasPrefix(src, "'"):
			if hostSourceMatches(src, o, s) {
				return true
			}
		}
	}
	return false
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}

// hostSourceMatches matches a CSP host-source against origin o.
func hostSourceMatches(src string, o, self *url.URL) bool {
	scheme := ""
	if i := strings.Index(src, "://"); i >= 0 {
		scheme, src = src[:i], src[i+3:]
	}
	if i := strings.IndexByte(src, '/'); i >= 0 {
		src = src[:i]
	}
	host, p := src, ""
	if i := strings.LastIndexByte(src, ':'); i >= 0 && !strings.Contains(src[i:], "]") {
		host, p = src[:i], src[i+1:]
	}
	switch {
	case scheme != "":
		if o.Scheme != scheme && !(scheme == "http" && o.Scheme == "https") {
			return false
		}
	case self != nil && self.Scheme == "http":
		if o.Scheme != "http" && o.Scheme != "https" {
			return false
		}
	default:
		if o.Scheme != "https" && (self == nil || o.Scheme != self.Scheme) {
			return false
		}
	}
	oh := strings.ToLower(o.Hostname())
	if strings.HasPrefix(host, "*.") {
		if !strings.HasSuffix(oh, host[1:]) {
			return false
		}
	} else if oh != host {
		return false
	}
	switch p {
	case "*":
		return true
	case "":
		return port(o) == defaultPort(o.Scheme)
	}
	return port(o) == p
}

func defaultPort(scheme string) string {
	switch scheme {
	case "https":
		return "443"
	case "http":
		return "80"
	}
	return ""
}
