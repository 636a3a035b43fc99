// Package header is the "header" identity source: a reverse proxy in front of
// rcsso (the website's own, or an auth proxy such as oauth2-proxy) has already
// authenticated the visitor and passes who they are in request headers. The
// headers are believed only when the TCP peer is one of the trusted proxies.
package header

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"unicode"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
)

// maxValue bounds a header value (bytes).
const maxValue = 256

// Options configures the source.
type Options struct {
	// Name is the source name; subjects are "<Name>:<user header value>".
	Name string
	// UserHeader carries the stable user id/name (required), e.g. X-Forwarded-User.
	UserHeader string
	// EmailHeader and NameHeader are optional.
	EmailHeader string
	NameHeader  string
	// TrustedProxies are the peers allowed to set the headers.
	TrustedProxies []netip.Prefix
	// GroupsHeader optionally carries the person's groups (comma or space
	// separated); mapped to Rocket.Chat roles through RoleMap.
	GroupsHeader string
	// RoleMap maps a group to a Rocket.Chat role (an allow-list).
	RoleMap map[string]string
	// EmailVerified says whether the proxy vouches for the e-mail it sends
	// (configuration key email_verified, default false): a proxy that
	// authenticated the person has not necessarily verified their address,
	// and an unvouched address is never used to create or adopt a
	// Rocket.Chat account.
	EmailVerified bool
}

// Source is the header identity source.
type Source struct{ cfg Options }

// New returns a header source.
func New(cfg Options) *Source {
	if cfg.Name == "" {
		cfg.Name = "header"
	}
	return &Source{cfg: cfg}
}

// Name implements identity.Source.
func (s *Source) Name() string { return s.cfg.Name }

// Identify implements identity.Source. Requests from peers outside
// TrustedProxies, or without the user header, are not logged in; a malformed
// value (too long, control characters) is treated as not logged in too.
//
// From a trusted proxy, an identity header (user, e-mail, name or groups)
// that appears more than once, or an e-mail header holding a comma-joined
// list, is identity.ErrMalformedRequest (the API URL answers 400): a proxy
// that appends its header to the one the client sent, instead of replacing
// it, would otherwise let the client choose who it is (Go's Header.Get
// returns the first value). The user and name headers may hold commas
// ("CN=Alice,OU=Staff" certificate names, "Doe, Jane").
func (s *Source) Identify(r *http.Request) (identity.Identity, error) {
	if !s.trusted(r.RemoteAddr) {
		if len(r.Header.Values(s.cfg.UserHeader)) > 0 {
			return identity.Identity{}, fmt.Errorf("%w: header %s ignored from untrusted peer", identity.ErrNotLoggedIn, s.cfg.UserHeader)
		}
		return identity.Identity{}, identity.ErrNotLoggedIn
	}
	for _, h := range []string{s.cfg.UserHeader, s.cfg.EmailHeader, s.cfg.NameHeader, s.cfg.GroupsHeader} {
		if h != "" && len(r.Header.Values(h)) > 1 {
			return identity.Identity{}, fmt.Errorf("%w: identity header %s appears %d times; the proxy in front of rcsso must replace it, not add to it",
				identity.ErrMalformedRequest, h, len(r.Header.Values(h)))
		}
	}
	user := r.Header.Get(s.cfg.UserHeader)
	if user == "" {
		return identity.Identity{}, identity.ErrNotLoggedIn
	}
	email := r.Header.Get(s.cfg.EmailHeader)
	name := r.Header.Get(s.cfg.NameHeader)
	if strings.Contains(email, ",") {
		return identity.Identity{}, fmt.Errorf("%w: identity header %s holds a comma-joined list, not one address; the proxy in front of rcsso must replace it, not add to it",
			identity.ErrMalformedRequest, s.cfg.EmailHeader)
	}
	for _, v := range []string{user, email, name} {
		if !clean(v) {
			return identity.Identity{}, fmt.Errorf("%w: malformed identity header", identity.ErrNotLoggedIn)
		}
	}
	c := map[string]any{"user": user, "email": email, "name": name}
	m := claims.Mapping{Subject: "user", Username: "user", Name: "name", Email: "email", EmailVerified: "-", Avatar: "-", AssumeEmailVerified: s.cfg.EmailVerified}
	if s.cfg.GroupsHeader != "" {
		groups := r.Header.Get(s.cfg.GroupsHeader)
		if !clean(groups) {
			groups = ""
		}
		c["groups"] = groups
		m.Roles, m.RoleMap = "groups", s.cfg.RoleMap
	}
	id, err := m.Map(s.cfg.Name, c)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("%w: %v", identity.ErrNotLoggedIn, err)
	}
	return id, nil
}

func (s *Source) trusted(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func clean(v string) bool {
	if len(v) > maxValue {
		return false
	}
	for _, r := range v {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}
