package config

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
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
