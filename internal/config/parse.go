package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// ParsePrefix parses a CIDR prefix ("10.0.0.0/8") or a single IP address
// ("127.0.0.1", taken as /32 or /128).
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// DecodeKey decodes a 32-byte AES-256 key written in base64 (standard or
// URL alphabet, padded or not).
func DecodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != 32 {
				return nil, fmt.Errorf("must decode to 32 bytes (got %d); generate one with: head -c32 /dev/urandom | base64", len(b))
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("must be 32 random bytes in base64; generate one with: head -c32 /dev/urandom | base64")
}

// SameSite reports whether two URLs are on the same site: same scheme and
// registrable domain (eTLD+1; IP addresses and single-label hosts compare
// whole). Browsers treat same-site requests as first-party for cookies.
func SameSite(a, b *url.URL) bool {
	if a == nil || b == nil || a.Scheme != b.Scheme {
		return false
	}
	return site(a.Hostname()) == site(b.Hostname())
}

func site(host string) string {
	host = strings.ToLower(host)
	if net.ParseIP(host) != nil || !strings.Contains(host, ".") {
		return host
	}
	s, err := publicsuffix.EffectiveTLDPlusOne(host)
	if err != nil {
		return host
	}
	return s
}
