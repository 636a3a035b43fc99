// Package claims maps the attributes an identity source learns about a
// visitor (OIDC / JWT claims, a whoami JSON answer, proxy headers) onto an
// identity.Identity. One Mapping is shared by every source type, so the same
// configuration keys mean the same thing everywhere.
package claims

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/rcsso/rcsso/internal/identity"
)

// ErrMissingSubject means the claims have no usable stable subject.
var ErrMissingSubject = errors.New("claims: no subject")

// Mapping says which claim carries what. Claim names may be dotted paths
// into nested objects ("user.id"). Empty fields take the defaults of
// DefaultMapping.
//
// It is also the claims block of an identity source's configuration
// (identity[i].claims: subject, username, name, email, email_verified,
// avatar, roles, role_map).
type Mapping struct {
	// Subject names the stable, never-reassigned user id (default "sub").
	// It is never the e-mail alone.
	Subject string `koanf:"subject"`
	// Username names the claim used as the website user name (default
	// "preferred_username", falling back to the subject).
	Username string `koanf:"username"`
	// Name, Email, EmailVerified, Avatar name the profile claims (defaults
	// "name", "email", "email_verified", "picture").
	Name          string `koanf:"name"`
	Email         string `koanf:"email"`
	EmailVerified string `koanf:"email_verified"`
	Avatar        string `koanf:"avatar"`
	// Roles names a claim holding a string or a list of strings (default
	// "" = roles not managed).
	Roles string `koanf:"roles"`
	// Groups names a claim holding the person's groups, a string (comma
	// or space separated) or a list of strings (default "groups"; absent
	// claim = groups unknown).
	Groups string `koanf:"groups"`
	// RoleMap maps website role → Rocket.Chat role. Only roles listed here
	// are passed on (an allow-list); a website role not in it is dropped.
	RoleMap map[string]string `koanf:"role_map"`
	// AssumeEmailVerified treats the e-mail as verified when the claim is
	// absent (for sources that vouch for it, such as a trusted proxy).
	AssumeEmailVerified bool `koanf:"-"`
}

// ManagesRoles implements identity.RoleSource for a source whose configuration
// holds this mapping: roles are managed when a roles claim is named, and
// admin is among them when the role map can produce it.
func (m Mapping) ManagesRoles() (managed, admin bool) {
	for _, r := range m.RoleMap {
		admin = admin || r == "admin"
	}
	return m.Roles != "" || len(m.RoleMap) > 0, admin
}

// DefaultMapping is the OIDC standard claim set.
var DefaultMapping = Mapping{
	Subject:       "sub",
	Username:      "preferred_username",
	Name:          "name",
	Email:         "email",
	EmailVerified: "email_verified",
	Avatar:        "picture",
	Groups:        "groups",
}

func (m Mapping) withDefaults() Mapping {
	d := DefaultMapping
	if m.Subject == "" {
		m.Subject = d.Subject
	}
	if m.Username == "" {
		m.Username = d.Username
	}
	if m.Name == "" {
		m.Name = d.Name
	}
	if m.Email == "" {
		m.Email = d.Email
	}
	if m.EmailVerified == "" {
		m.EmailVerified = d.EmailVerified
	}
	if m.Avatar == "" {
		m.Avatar = d.Avatar
	}
	if m.Groups == "" {
		m.Groups = d.Groups
	}
	return m
}

// Limits on mapped values (bytes).
const (
	maxSubject = 255
	maxValue   = 512
	// maxGroups bounds the groups kept of one identity.
	maxGroups = 256
)

// Map turns claims into an Identity of source. The subject is
// "<source>:<subject claim>". Errors: ErrMissingSubject (wrapped) when the
// subject claim is absent, empty, not a string or number, or malformed.
// Malformed optional claims are dropped, not fatal.
func (m Mapping) Map(source string, c map[string]any) (identity.Identity, error) {
	m = m.withDefaults()
	sub, ok := scalar(lookup(c, m.Subject))
	if !ok || sub == "" || len(sub) > maxSubject || !printable(sub) {
		return identity.Identity{}, fmt.Errorf("%w: claim %q missing or malformed", ErrMissingSubject, m.Subject)
	}
	id := identity.Identity{Subject: source + ":" + sub, Source: source}
	id.Username = text(lookup(c, m.Username))
	if id.Username == "" {
		id.Username = sub
	}
	id.Name = text(lookup(c, m.Name))
	if email := text(lookup(c, m.Email)); validEmail(email) {
		id.Email = email
		switch v := lookup(c, m.EmailVerified).(type) {
		case bool:
			id.EmailVerified = v
		case string:
			id.EmailVerified = v == "true"
		case nil:
			id.EmailVerified = m.AssumeEmailVerified
		}
	}
	if a := text(lookup(c, m.Avatar)); a != "" {
		if u, err := url.Parse(a); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
			id.AvatarURL = a
		}
	}
	if v := lookup(c, m.Groups); v != nil {
		id.Groups = []string{}
		for _, g := range strings_(v) {
			if len(id.Groups) == maxGroups {
				break
			}
			if g != "" && len(g) <= maxValue && printable(g) && !contains(id.Groups, g) {
				id.Groups = append(id.Groups, g)
			}
		}
	}
	if m.Roles != "" {
		id.Roles = []string{}
		for _, r := range strings_(lookup(c, m.Roles)) {
			if rc, ok := m.RoleMap[r]; ok && !contains(id.Roles, rc) {
				id.Roles = append(id.Roles, rc)
			}
		}
	}
	return id, nil
}

// lookup follows a dotted path into nested maps.
func lookup(c map[string]any, path string) any {
	if path == "" {
		return nil
	}
	if v, ok := c[path]; ok {
		return v
	}
	var cur any = c
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// maxExactFloat is 2^53: from there on a JSON number decoded into float64
// may have been rounded (2^53+1 reads as 2^53), so two different user ids
// could map to one subject.
const maxExactFloat = 1 << 53

// scalar renders strings and JSON numbers (integers only) as strings.
// Numbers are rendered canonically (json.Number "1e3" and float64 1000 both
// give "1000"); a float64 of magnitude 2^53 or more, which may have been
// rounded while decoding, is refused. Decode with json.Decoder.UseNumber to
// keep large ids.
func scalar(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return strings.TrimSpace(x), true
	case float64:
		return integral(x)
	case int64:
		return strconv.FormatInt(x, 10), true
	case int:
		return strconv.Itoa(x), true
	case json.Number:
		s := x.String()
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return strconv.FormatInt(i, 10), true
		}
		if bigInteger(s) {
			return s, true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return integral(f)
		}
	}
	return "", false
}

// integral renders f when it is an integer that float64 holds exactly.
func integral(f float64) (string, bool) {
	if f != math.Trunc(f) || math.Abs(f) >= maxExactFloat {
		return "", false
	}
	return strconv.FormatInt(int64(f), 10), true
}

// bigInteger reports whether s is a canonical decimal integer (beyond int64).
func bigInteger(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func text(v any) string {
	s, ok := v.(string)
	if !ok {
		return ""
	}
	s = strings.TrimSpace(s)
	if len(s) > maxValue || !printable(s) {
		return ""
	}
	return s
}

func strings_(v any) []string {
	switch x := v.(type) {
	case string:
		return strings.Fields(strings.ReplaceAll(x, ",", " "))
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return x
	}
	return nil
}

func printable(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}

func validEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	return at > 0 && at < len(s)-1 && !strings.ContainsAny(s, " <>\"") && len(s) <= 254
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
