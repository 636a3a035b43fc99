// Package ldap is the "ldap" identity source: the IFrame URL's login form
// checks the user name and password against an LDAP directory (OpenLDAP,
// Active Directory, …), then rcsso's own session cookie carries the
// person, as with the local source.
//
// A login binds as the search account, searches user_base_dn for the one
// entry user_filter matches (the typed user name escaped per RFC 4515),
// binds as that entry with the typed password, and reads the person's
// attributes and groups (memberOf, or a group search). Connections come
// from a bounded pool and are reused; every login has a time budget
// (timeout). A wrong password and an unknown user are the same error
// (identity.ErrBadCredentials) after the same directory work; a directory
// that cannot be reached is identity.ErrSourceUnavailable (502 on the
// login form). The login form's failure limits and password-check slots
// (internal/server) apply as to every password source.
package ldap

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
	"github.com/rcsso/rcsso/internal/websession"
)

// Limits on what the login form may send (bytes). Longer input is a
// wrong user name or password without asking the directory.
const (
	MaxUsernameLen = 256
	MaxPasswordLen = 1024
)

// maxGroupEntries bounds a group search's answer.
const maxGroupEntries = 1000

// Source is the ldap identity source.
type Source struct {
	name     string
	cfg      Config
	sessions identity.Sessions
	log      *slog.Logger
	pool     *pool
}

// Name implements identity.Source.
func (s *Source) Name() string { return s.name }

// Identify implements identity.Source: the visitor's rcsso session, if
// this source started it (at a login on the IFrame URL's form).
func (s *Source) Identify(r *http.Request) (identity.Identity, error) {
	return websession.IdentifyAs(s.sessions, r, s.name)
}

// Check implements identity.Checker: the search account binds on a pooled
// connection within the source's timeout. Errors say what failed (the
// directory cannot be reached, the search account cannot bind).
func (s *Source) Check(ctx context.Context) error {
	budget, cancel := context.WithTimeoutCause(ctx, s.cfg.Timeout, fmt.Errorf("no answer within timeout (%v)", s.cfg.Timeout))
	defer cancel()
	err := s.pool.do(budget, s.bindService)
	if err != nil && budget.Err() != nil {
		err = fmt.Errorf("%w (%v)", context.Cause(budget), err)
	}
	if err != nil {
		return fmt.Errorf("ldap %s: %w", s.name, err)
	}
	return nil
}

// Close closes the pooled connections to the directory.
func (s *Source) Close() error {
	s.pool.Close()
	return nil
}

// Authenticate implements identity.PasswordAuthenticator. Errors:
// identity.ErrBadCredentials (wrong password, unknown user, an empty
// password, a user name no directory entry can have, a user_filter that
// matches several entries); identity.ErrSourceUnavailable wrapping the
// cause (the directory cannot be reached or answers with an error, the
// search account's bind fails, timeout exceeded, an entry without a
// usable subject_attribute); ctx's error when ctx ends first.
//
// An empty password is refused before anything is sent: a simple bind
// with a DN and an empty password is an "unauthenticated bind" (RFC 4513
// §5.1.2) that many directories answer with success, which would let
// anyone in as anyone.
func (s *Source) Authenticate(ctx context.Context, username, password string) (identity.Identity, error) {
	username = strings.TrimSpace(username)
	if !plausibleUsername(username) || password == "" || len(password) > MaxPasswordLen {
		return identity.Identity{}, identity.ErrBadCredentials
	}
	budget, cancel := context.WithTimeoutCause(ctx, s.cfg.Timeout, fmt.Errorf("no answer within timeout (%v)", s.cfg.Timeout))
	defer cancel()
	var id identity.Identity
	err := s.pool.do(budget, func(c *conn) (err error) {
		id, err = s.login(c, username, password)
		return err
	})
	switch {
	case err == nil:
		return id, nil
	case errors.Is(err, identity.ErrBadCredentials):
		return identity.Identity{}, err
	case ctx.Err() != nil:
		return identity.Identity{}, fmt.Errorf("ldap %s: %w", s.name, ctx.Err())
	case budget.Err() != nil:
		err = fmt.Errorf("%w (%v)", context.Cause(budget), err)
	}
	return identity.Identity{}, fmt.Errorf("ldap %s: %w: %w", s.name, identity.ErrSourceUnavailable, err)
}

// plausibleUsername refuses what no directory entry can be found by:
// empty, over MaxUsernameLen bytes, invalid UTF-8, control characters
// (NUL included).
func plausibleUsername(u string) bool {
	if u == "" || len(u) > MaxUsernameLen || !utf8.ValidString(u) {
		return false
	}
	return !strings.ContainsFunc(u, unicode.IsControl)
}

// login is one login on c: search bind, search, the person's bind, groups.
func (s *Source) login(c *conn, username, password string) (identity.Identity, error) {
	if err := s.bindService(c); err != nil {
		return identity.Identity{}, err
	}
	entry, err := s.findPerson(c, username)
	if err != nil {
		return identity.Identity{}, err
	}
	if entry == nil {
		// Unknown user: a bind the directory checks a password for, as it
		// would for a wrong password, so an unknown user name costs what
		// a known one does; the connection is then treated as not bound
		// as the search account, as after a person's bind, so the next
		// login on it costs the same whichever this one was.
		c.service = false
		if err := s.bindService(c); err != nil {
			return identity.Identity{}, err
		}
		c.service = false
		return identity.Identity{}, identity.ErrBadCredentials
	}
	c.service = false
	if err := c.Bind(entry.DN, password); err != nil {
		if goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
			return identity.Identity{}, identity.ErrBadCredentials
		}
		return identity.Identity{}, fmt.Errorf("binding as the person found: %w", err)
	}
	return s.identity(c, entry, username)
}

// bindService binds c as the search account unless it is bound so.
func (s *Source) bindService(c *conn) error {
	if c.service {
		return nil
	}
	if err := c.Bind(s.cfg.BindDN, s.cfg.BindPassword); err != nil {
		if goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials) {
			return fmt.Errorf("the search account (bind_dn %s) cannot bind: check bind_dn and bind_password: %w", s.cfg.BindDN, err)
		}
		return fmt.Errorf("binding as the search account: %w", err)
	}
	c.service = true
	return nil
}

// personAttributes are the attributes read from the person's entry.
func (s *Source) personAttributes() []string {
	a := s.cfg.Attributes
	var out []string
	for _, v := range []string{a.Username, a.Name, a.Email, a.Groups, s.cfg.SubjectAttribute} {
		if v != "" && !containsFold(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// findPerson returns the one entry user_filter matches for username, nil
// when none does or when several do (a filter that is not specific
// enough: logged, and nobody logs in through it).
func (s *Source) findPerson(c *conn, username string) (*goldap.Entry, error) {
	filter := buildFilter(s.cfg.UserFilter, map[string]string{phUsername: username})
	req := goldap.NewSearchRequest(s.cfg.UserBaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases,
		2, s.timeLimit(), false, filter, s.personAttributes(), nil)
	res, err := c.Search(req)
	switch {
	case goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) || (err == nil && len(res.Entries) > 1):
		s.log.Warn("ldap: user_filter matches several directory entries for one user name: nobody logs in with it; make the filter match one entry",
			"source", s.name, "filter", s.cfg.UserFilter)
		return nil, nil
	case goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject):
		return nil, fmt.Errorf("searching for the person: user_base_dn %s does not exist: %w", s.cfg.UserBaseDN, err)
	case err != nil:
		return nil, fmt.Errorf("searching for the person: %w", err)
	case len(res.Entries) == 0 || res.Entries[0].DN == "":
		return nil, nil
	}
	return res.Entries[0], nil
}

func (s *Source) timeLimit() int { return max(int(s.cfg.Timeout.Seconds()), 1) }

// identity builds the person's Identity from their entry (and a group
// search), through the shared claim mapping.
func (s *Source) identity(c *conn, e *goldap.Entry, typed string) (identity.Identity, error) {
	a := s.cfg.Attributes
	sub, err := subjectOf(e, s.cfg.SubjectAttribute)
	if err != nil {
		return identity.Identity{}, err
	}
	username := pick(e.GetEqualFoldAttributeValues(a.Username), typed)
	cl := map[string]any{
		"sub":      sub,
		"username": username,
		"name":     first(e.GetEqualFoldAttributeValues(a.Name)),
		"email":    first(e.GetEqualFoldAttributeValues(a.Email)),
	}
	var groups []string
	if s.cfg.GroupSearch.BaseDN != "" {
		if groups, err = s.searchGroups(c, e.DN, username); err != nil {
			return identity.Identity{}, err
		}
	} else {
		groups = groupNames(e.GetEqualFoldAttributeValues(a.Groups))
	}
	cl["groups"] = groups
	m := claims.Mapping{Subject: "sub", Username: "username", Name: "name", Email: "email", EmailVerified: "-",
		Avatar: "-", Groups: "groups", AssumeEmailVerified: s.cfg.EmailVerified}
	if len(s.cfg.Claims.RoleMap) > 0 {
		m.Roles, m.RoleMap = "groups", s.cfg.Claims.RoleMap
	}
	id, err := m.Map(s.name, cl)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("entry %s: %w", e.DN, err)
	}
	if id.Groups == nil {
		id.Groups = []string{} // the directory says: no groups
	}
	return id, nil
}

// subjectOf is the entry's subject_attribute value: exactly one value,
// objectGUID and objectSid in hex, text lower-cased.
func subjectOf(e *goldap.Entry, attr string) (string, error) {
	raw := e.GetEqualFoldRawAttributeValues(attr)
	if len(raw) != 1 || len(raw[0]) == 0 {
		return "", fmt.Errorf("entry %s has %d values of subject_attribute %s, not one: choose a single-valued attribute such as entryUUID (OpenLDAP) or objectGUID (Active Directory)",
			e.DN, len(raw), attr)
	}
	if strings.EqualFold(attr, "objectGUID") || strings.EqualFold(attr, "objectSid") {
		return hex.EncodeToString(raw[0]), nil
	}
	v := string(raw[0])
	if !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl) {
		return "", fmt.Errorf("entry %s: subject_attribute %s is not text (a binary attribute other than objectGUID and objectSid?)", e.DN, attr)
	}
	return strings.ToLower(v), nil
}

// searchGroups returns the names of the groups group_search finds for the
// person (dn, username), searching as the search account.
func (s *Source) searchGroups(c *conn, dn, username string) ([]string, error) {
	if err := s.bindService(c); err != nil {
		return nil, err
	}
	g := s.cfg.GroupSearch
	filter := buildFilter(g.Filter, map[string]string{phDN: dn, phUsername: username})
	req := goldap.NewSearchRequest(g.BaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases,
		maxGroupEntries, s.timeLimit(), false, filter, []string{g.NameAttribute}, nil)
	res, err := c.Search(req)
	if goldap.IsErrorWithCode(err, goldap.LDAPResultSizeLimitExceeded) {
		s.log.Warn("ldap: group search found more groups than rcsso reads; the rest are ignored", "source", s.name,
			"limit", maxGroupEntries, "dn", dn)
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("searching for the person's groups: %w", err)
	}
	names := make([]string, 0, len(res.Entries))
	for _, e := range res.Entries {
		if v := first(e.GetEqualFoldAttributeValues(g.NameAttribute)); v != "" {
			names = append(names, v)
		}
	}
	return names, nil
}

// groupNames turns memberOf DNs into group names: the value of each DN's
// first RDN (cn=staff,ou=groups,dc=example,dc=org → staff). Values that
// are not DNs are dropped.
func groupNames(dns []string) []string {
	out := make([]string, 0, len(dns))
	for _, v := range dns {
		dn, err := goldap.ParseDN(v)
		if err != nil || len(dn.RDNs) == 0 || len(dn.RDNs[0].Attributes) == 0 {
			continue
		}
		out = append(out, dn.RDNs[0].Attributes[0].Value)
	}
	return out
}

func first(vs []string) string {
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// pick is the value equal (ignoring case) to what the person typed, if
// the attribute has one, else its first value: a person with two uids
// keeps the one they log in with.
func pick(vs []string, typed string) string {
	for _, v := range vs {
		if strings.EqualFold(v, typed) {
			return v
		}
	}
	return first(vs)
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
