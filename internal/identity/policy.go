package identity

import (
	"errors"
	"slices"
	"strings"
)

// ErrAccessDenied means the website knows the person, but the identity
// source's access policy does not give them chat (identity[i].allow): they
// get no Rocket.Chat account and no token, and the IFrame URL says so.
var ErrAccessDenied = errors.New("identity: this person is not allowed to use the chat")

// Policy says who may have chat at all (an identity source's allow block).
// A person is allowed when the policy is empty, or when they are in one of
// Groups, or hold one of Roles (Rocket.Chat roles after the role map), or
// have a verified e-mail address in one of EmailDomains. Comparisons of
// groups and roles are exact; domains are compared case-insensitively and
// match the address's domain exactly (no subdomains).
type Policy struct {
	Groups       []string `koanf:"groups"`
	Roles        []string `koanf:"roles"`
	EmailDomains []string `koanf:"email_domains"`
}

// Empty reports whether the policy allows everybody.
func (p Policy) Empty() bool { return len(p.Groups)+len(p.Roles)+len(p.EmailDomains) == 0 }

// Allows reports whether id may have chat.
func (p Policy) Allows(id Identity) bool {
	if p.Empty() {
		return true
	}
	for _, g := range id.Groups {
		if slices.Contains(p.Groups, g) {
			return true
		}
	}
	for _, r := range id.Roles {
		if slices.Contains(p.Roles, r) {
			return true
		}
	}
	if id.EmailVerified {
		if _, domain, ok := strings.Cut(strings.TrimSpace(id.Email), "@"); ok {
			for _, d := range p.EmailDomains {
				if strings.EqualFold(d, domain) {
					return true
				}
			}
		}
	}
	return false
}
