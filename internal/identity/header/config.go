package header

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
)

// Config is identity source type header's configuration (an entry of the
// identity list): a trusted reverse proxy's headers.
type Config struct {
	// UserHeader carries the stable user id (required), e.g. X-Forwarded-User.
	UserHeader  string `koanf:"user_header"`
	EmailHeader string `koanf:"email_header"`
	NameHeader  string `koanf:"name_header"`
	// GroupsHeader carries groups, comma or space separated, mapped to
	// Rocket.Chat roles through claims.role_map.
	GroupsHeader string `koanf:"groups_header"`
	// TrustedProxies are the peers (IP addresses or CIDR prefixes) allowed
	// to set the headers (required).
	TrustedProxies []string `koanf:"trusted_proxies"`
	// EmailVerified says the proxy verified the e-mail it sends.
	EmailVerified bool `koanf:"email_verified"`
	// Claims: only role_map applies to this source.
	Claims claims.Mapping `koanf:"claims"`

	prefixes []netip.Prefix
	broad    []string // over-broad trusted_proxies, for a start-up warning
	key      string
}

// Validate implements identity.Config.
func (c *Config) Validate(b config.Block) error {
	var errs []error
	if c.UserHeader == "" {
		errs = append(errs, b.Errorf("user_header", "the header source needs the name of the header carrying the user, e.g. X-Forwarded-User"))
	}
	if len(c.TrustedProxies) == 0 {
		errs = append(errs, b.Errorf("trusted_proxies", "list the reverse proxies allowed to set identity headers, e.g. [127.0.0.1/32]; without it anyone could send them"))
	}
	c.prefixes, c.broad, c.key = c.prefixes[:0], nil, b.Key("trusted_proxies")
	for _, p := range c.TrustedProxies {
		pp, err := config.ParsePrefix(p)
		if err != nil {
			errs = append(errs, b.Errorf("trusted_proxies", "%q is not an IP address or CIDR prefix such as 10.0.0.0/8", p))
			continue
		}
		c.prefixes = append(c.prefixes, pp)
		if (pp.Addr().Is4() && pp.Bits() < 8) || (pp.Addr().Is6() && pp.Bits() < 32) {
			c.broad = append(c.broad, p)
		}
	}
	if m := c.Claims; m.Subject != "" || m.Username != "" || m.Name != "" || m.Email != "" || m.EmailVerified != "" || m.Avatar != "" || m.Roles != "" {
		errs = append(errs, b.Errorf("claims", "the header source reads its headers, not claims: only claims.role_map applies (with groups_header)"))
	}
	for _, h := range []string{c.UserHeader, c.EmailHeader, c.NameHeader, c.GroupsHeader} {
		if strings.ContainsAny(h, " :\t") {
			errs = append(errs, b.Errorf("user_header", "%q is not a header name", h))
		}
	}
	return errors.Join(errs...)
}

// ManagesRoles implements identity.RoleSource.
func (c *Config) ManagesRoles() (managed, admin bool) {
	_, admin = c.Claims.ManagesRoles()
	return c.GroupsHeader != "" || len(c.Claims.RoleMap) > 0, admin
}

// Open implements identity.Config.
func (c *Config) Open(_ context.Context, d identity.Deps) (identity.Source, error) {
	if len(c.broad) > 0 && d.Logger != nil {
		d.Logger.Warn("trusted_proxies this broad let clients set identity headers themselves and log in as anyone: list only your reverse proxies' addresses",
			"key", c.key, "prefixes", strings.Join(c.broad, ", "))
	}
	return New(Options{Name: d.Name, UserHeader: c.UserHeader, EmailHeader: c.EmailHeader, NameHeader: c.NameHeader,
		GroupsHeader: c.GroupsHeader, RoleMap: c.Claims.RoleMap, TrustedProxies: c.prefixes, EmailVerified: c.EmailVerified}), nil
}
