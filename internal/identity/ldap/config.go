package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
)

// Defaults of the configuration keys.
const (
	DefaultUserFilter    = "(uid=" + phUsername + ")"
	DefaultGroupFilter   = "(member=" + phDN + ")"
	DefaultTimeout       = 10 * time.Second
	DefaultPoolSize      = 4
	maxPoolSize          = 64
	maxTimeout           = time.Minute
	defaultUsernameAttr  = "uid"
	defaultNameAttr      = "cn"
	defaultEmailAttr     = "mail"
	defaultGroupsAttr    = "memberOf"
	defaultGroupNameAttr = "cn"
)

// Config is identity source type ldap's configuration (an entry of the
// identity list): a directory the IFrame URL's login form checks
// passwords against. rcsso binds as the search account (bind_dn), finds
// the one entry below user_base_dn that user_filter matches, binds as that
// entry with the password typed, and reads the person's attributes and
// groups. See docs/identity-sources.md.
type Config struct {
	// URL is the directory, ldap://host[:389] or ldaps://host[:636]
	// (required). ldap:// to a host other than a loopback address needs
	// start_tls (or allow_plaintext): passwords cross the network.
	URL string `koanf:"url"`
	// StartTLS upgrades an ldap:// connection to TLS before anything is
	// sent (RFC 4511 §4.14).
	StartTLS bool `koanf:"start_tls"`
	// AllowPlaintext permits ldap:// without start_tls to a host that is
	// not a loopback address (a sidecar on a private network); passwords
	// then cross that network in clear.
	AllowPlaintext bool `koanf:"allow_plaintext"`
	TLS            TLS  `koanf:"tls"`
	// BindDN and BindPassword (or BindPasswordFile) are the search
	// account's (required): it needs to search user_base_dn (and
	// group_search.base_dn) and read the attributes below. Active
	// Directory also takes rcsso@corp.example.com or CORP\rcsso.
	BindDN           string `koanf:"bind_dn"`
	BindPassword     string `koanf:"bind_password"`
	BindPasswordFile string `koanf:"bind_password_file"`
	// UserBaseDN is where people are searched, the whole subtree
	// (required).
	UserBaseDN string `koanf:"user_base_dn"`
	// UserFilter finds the person; {username} is replaced by what was
	// typed, escaped (RFC 4515). Default "(uid={username})"; Active
	// Directory: "(sAMAccountName={username})". It must match one entry:
	// a filter that matches several refuses the login.
	UserFilter string `koanf:"user_filter"`
	// SubjectAttribute holds the stable id in subjects
	// "<source name>:<value>" (default: attributes.username). It must have
	// one value per person and never be given to another person:
	// entryUUID (OpenLDAP) or objectGUID (Active Directory) survive
	// renames; the user name default is readable and survives moving to
	// another directory server, but a renamed person becomes a new
	// Rocket.Chat user. Text values are lower-cased (LDAP compares uid,
	// sAMAccountName and entryUUID ignoring case); objectGUID and
	// objectSid are written in hex.
	SubjectAttribute string     `koanf:"subject_attribute"`
	Attributes       Attributes `koanf:"attributes"`
	// GroupSearch finds groups by searching for entries that list the
	// person (instead of reading attributes.groups from the person).
	GroupSearch GroupSearch `koanf:"group_search"`
	// EmailVerified says the directory vouches for the e-mail addresses
	// it holds (default false, as for the header source).
	EmailVerified bool `koanf:"email_verified"`
	// Timeout bounds one login's work with the directory: waiting for a
	// connection, connecting, TLS, binds and searches (default 10s, at
	// most 1m). Past it the login form answers 502.
	Timeout time.Duration `koanf:"timeout"`
	// PoolSize is how many connections to the directory rcsso keeps open
	// at most (default 4, 1 to 64); logins beyond it wait for one.
	PoolSize int `koanf:"pool_size"`
	// Claims: only role_map applies (group name → Rocket.Chat role).
	Claims claims.Mapping `koanf:"claims"`

	url *url.URL
	tls *tls.Config
}

// TLS is the tls block: how rcsso checks the directory's certificate.
type TLS struct {
	// CAFile is a PEM file of the CAs to trust (default: the system's).
	CAFile string `koanf:"ca_file"`
	// ServerName is the name checked in the certificate (default: the
	// URL's host).
	ServerName string `koanf:"server_name"`
	// InsecureSkipVerify is refused: it exists to say so.
	InsecureSkipVerify bool `koanf:"insecure_skip_verify"`
}

// Attributes name the person's attributes.
type Attributes struct {
	// Username is the website user name (default uid; Active Directory:
	// sAMAccountName).
	Username string `koanf:"username"`
	// Name is the display name (default cn; Active Directory:
	// displayName).
	Name string `koanf:"name"`
	// Email is the e-mail address (default mail).
	Email string `koanf:"email"`
	// Groups holds the DNs of the person's groups (default memberOf);
	// a group's name is the value of its DN's first RDN
	// (cn=staff,ou=groups,… → staff). Not used with group_search.
	Groups string `koanf:"groups"`
}

// GroupSearch is the group_search block.
type GroupSearch struct {
	// BaseDN is where groups are searched, the whole subtree; setting it
	// turns group search on.
	BaseDN string `koanf:"base_dn"`
	// Filter finds the person's groups; {dn} is the person's DN and
	// {username} their attributes.username value, both escaped (default
	// "(member={dn})"; posixGroup: "(memberUid={username})").
	Filter string `koanf:"filter"`
	// NameAttribute is the group's name (default cn).
	NameAttribute string `koanf:"name_attribute"`
}

// attrRE is an attribute description: a name or numeric OID, with options
// (RFC 4512 §2.5).
var attrRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*|[0-9]+(\.[0-9]+)+)(;[A-Za-z0-9-]+)*$`)

// Validate implements identity.Config; it reads bind_password_file and
// tls.ca_file.
func (c *Config) Validate(b config.Block) error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, b.Errorf(key, format, a...)) }

	c.url = nil
	switch u, err := url.Parse(c.URL); {
	case c.URL == "":
		bad("url", "the ldap source needs the directory's URL, e.g. ldaps://ldap.example.org or ldap://ldap.example.org with start_tls: true")
	case err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Hostname() == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		bad("url", "%q is not ldap://host[:port] or ldaps://host[:port] (no DN, attributes or credentials in it)", c.URL)
	default:
		c.url = u
		if u.Scheme == "ldaps" && c.StartTLS {
			bad("start_tls", "ldaps:// is TLS from the first byte: start_tls is for ldap:// URLs")
		}
		if u.Scheme == "ldap" && !c.StartTLS && !c.AllowPlaintext && !loopback(u.Hostname()) {
			bad("url", "%s would carry people's passwords in clear: use ldaps://, or start_tls: true; allow_plaintext: true only for a directory on a network you trust", c.URL)
		}
	}
	if c.TLS.InsecureSkipVerify {
		bad("tls.insecure_skip_verify", "rcsso does not skip certificate checks (anyone on the path could read every password): give the directory's CA in tls.ca_file")
	}
	var roots *x509.CertPool
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		roots = x509.NewCertPool()
		switch {
		case err != nil:
			bad("tls.ca_file", "%v", err)
		case !roots.AppendCertsFromPEM(pem):
			bad("tls.ca_file", "%s holds no PEM certificate", c.TLS.CAFile)
		}
	}
	if c.url != nil {
		name := c.TLS.ServerName
		if name == "" {
			name = c.url.Hostname()
		}
		c.tls = &tls.Config{RootCAs: roots, ServerName: name, MinVersion: tls.VersionTLS12}
	}

	if c.BindDN == "" {
		bad("bind_dn", "the ldap source searches as an account of its own: give its DN, e.g. cn=rcsso,ou=services,dc=example,dc=org")
	} else if _, err := goldap.ParseDN(c.BindDN); err != nil && !strings.ContainsAny(c.BindDN, `@\`) {
		bad("bind_dn", "%q is not a DN (nor, for Active Directory, user@domain or DOMAIN\\user): %v", c.BindDN, err)
	}
	if err := b.ReadSecret("bind_password", &c.BindPassword, c.BindPasswordFile); err != nil {
		errs = append(errs, err)
	} else if c.BindPassword == "" && c.BindDN != "" {
		bad("bind_password", "give the search account's password (bind_password_file: a file holding it, preferred)")
	}
	if c.UserBaseDN == "" {
		bad("user_base_dn", "give the DN below which people are searched, e.g. ou=people,dc=example,dc=org")
	} else if _, err := goldap.ParseDN(c.UserBaseDN); err != nil {
		bad("user_base_dn", "%q is not a DN: %v", c.UserBaseDN, err)
	}
	if c.UserFilter == "" {
		c.UserFilter = DefaultUserFilter
	}
	if err := checkFilter(c.UserFilter, phUsername, phUsername); err != nil {
		bad("user_filter", "%v", err)
	}

	if c.GroupSearch.BaseDN != "" && c.Attributes.Groups != "" {
		bad("attributes.groups", "groups come from attributes.groups (memberOf) or from group_search, not both: remove one")
	}
	a := &c.Attributes
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&a.Username, defaultUsernameAttr)
	def(&a.Name, defaultNameAttr)
	def(&a.Email, defaultEmailAttr)
	if c.GroupSearch.BaseDN == "" {
		def(&a.Groups, defaultGroupsAttr)
	}
	def(&c.SubjectAttribute, a.Username)
	for key, v := range map[string]string{"attributes.username": a.Username, "attributes.name": a.Name,
		"attributes.email": a.Email, "attributes.groups": a.Groups, "subject_attribute": c.SubjectAttribute} {
		if v != "" && !attrRE.MatchString(v) {
			bad(key, "%q is not an attribute name such as uid or sAMAccountName", v)
		}
	}
	if g := &c.GroupSearch; g.BaseDN != "" {
		if _, err := goldap.ParseDN(g.BaseDN); err != nil {
			bad("group_search.base_dn", "%q is not a DN: %v", g.BaseDN, err)
		}
		def(&g.Filter, DefaultGroupFilter)
		def(&g.NameAttribute, defaultGroupNameAttr)
		if err := checkFilter(g.Filter, "", phDN, phUsername); err != nil {
			bad("group_search.filter", "%v", err)
		}
		if !attrRE.MatchString(g.NameAttribute) {
			bad("group_search.name_attribute", "%q is not an attribute name such as cn", g.NameAttribute)
		}
	} else if c.GroupSearch.Filter != "" || c.GroupSearch.NameAttribute != "" {
		bad("group_search.base_dn", "group_search needs base_dn, the DN below which groups are searched")
	}

	if m := c.Claims; m.Subject != "" || m.Username != "" || m.Name != "" || m.Email != "" || m.EmailVerified != "" || m.Avatar != "" || m.Roles != "" || m.Groups != "" {
		bad("claims", "the ldap source reads attributes (attributes.*), not claims: only claims.role_map applies (group name → Rocket.Chat role)")
	}
	switch {
	case c.Timeout == 0:
		c.Timeout = DefaultTimeout
	case c.Timeout < 0 || c.Timeout > maxTimeout:
		bad("timeout", "must be positive and at most %v (default %v)", maxTimeout, DefaultTimeout)
	}
	switch {
	case c.PoolSize == 0:
		c.PoolSize = DefaultPoolSize
	case c.PoolSize < 0 || c.PoolSize > maxPoolSize:
		bad("pool_size", "must be between 1 and %d (default %d)", maxPoolSize, DefaultPoolSize)
	}
	return errors.Join(errs...)
}

// loopback reports whether host is localhost or a loopback address.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// ManagesRoles implements identity.RoleSource: roles come from groups
// through claims.role_map.
func (c *Config) ManagesRoles() (managed, admin bool) {
	_, admin = c.Claims.ManagesRoles()
	return len(c.Claims.RoleMap) > 0, admin
}

// Open implements identity.Config. It does not contact the directory: the
// first login does, so rcsso starts while the directory is down.
func (c *Config) Open(_ context.Context, d identity.Deps) (identity.Source, error) {
	if c.url == nil || c.tls == nil {
		return nil, fmt.Errorf("ldap: Open before a successful Validate")
	}
	name := d.Name
	if name == "" {
		name = "ldap"
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Source{name: name, cfg: *c, sessions: d.Sessions, log: log,
		pool: newPool(c.url, c.tls, c.StartTLS, c.PoolSize, c.Timeout)}
	s.log.Info("ldap identity source", "source", name, "url", c.url.Redacted(), "start_tls", c.StartTLS,
		"user_base_dn", c.UserBaseDN, "pool_size", c.PoolSize)
	return s, nil
}
