package ldap

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/config"
)

func validate(raw map[string]any) (*Config, error) {
	b := config.Block{Path: "identity[1]", Raw: raw}
	var c Config
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	return &c, c.Validate(b)
}

func minimal(over map[string]any) map[string]any {
	raw := map[string]any{"url": "ldaps://ldap.example.org", "bind_dn": "cn=rcsso,dc=example,dc=org",
		"bind_password": "pw", "user_base_dn": "ou=people,dc=example,dc=org"}
	maps.Copy(raw, over)
	for k, v := range raw {
		if v == nil {
			delete(raw, k)
		}
	}
	return raw
}

// A minimal configuration gets the documented defaults.
func TestConfigDefaults(t *testing.T) {
	c, err := validate(minimal(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.UserFilter != "(uid={username})" || c.Attributes != (Attributes{"uid", "cn", "mail", "memberOf"}) ||
		c.SubjectAttribute != "uid" || c.Timeout != 10*time.Second || c.PoolSize != 4 || c.EmailVerified ||
		c.tls.ServerName != "ldap.example.org" || c.tls.RootCAs != nil {
		t.Fatalf("defaults: %+v", c)
	}
	if managed, _ := c.ManagesRoles(); managed {
		t.Fatal("roles managed without role_map")
	}
	// Active Directory's shape (docs/identity-sources.md).
	c, err = validate(minimal(map[string]any{"bind_dn": "rcsso@corp.example.com",
		"user_filter":       "(&(objectCategory=person)(objectClass=user)(|(sAMAccountName={username})(userPrincipalName={username}))(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
		"attributes":        map[string]any{"username": "sAMAccountName", "name": "displayName", "email": "userPrincipalName"},
		"subject_attribute": "objectGUID", "claims": map[string]any{"role_map": map[string]any{"Chat Admins": "admin"}}}))
	if err != nil {
		t.Fatal(err)
	}
	if managed, admin := c.ManagesRoles(); !managed || !admin || c.Attributes.Groups != "memberOf" {
		t.Fatalf("AD: %+v", c)
	}
	if _, err := validate(minimal(map[string]any{"bind_dn": `CORP\rcsso`})); err != nil {
		t.Fatal(err)
	}
	// Nested groups in Active Directory: LDAP_MATCHING_RULE_IN_CHAIN.
	if _, err := validate(minimal(map[string]any{"group_search": map[string]any{"base_dn": "dc=corp,dc=example,dc=com",
		"filter": "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:={dn}))"}})); err != nil {
		t.Fatal(err)
	}
	// A group search replaces memberOf.
	c, err = validate(minimal(map[string]any{"group_search": map[string]any{"base_dn": "ou=groups,dc=example,dc=org"}}))
	if err != nil || c.Attributes.Groups != "" || c.GroupSearch.Filter != "(member={dn})" || c.GroupSearch.NameAttribute != "cn" {
		t.Fatalf("group search: %+v, %v", c, err)
	}
}

// Every mistake names its key and the fix.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	_ = os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	cases := []struct {
		name string
		raw  map[string]any
		want string
	}{
		{"no url", minimal(map[string]any{"url": nil}), "identity[1].url: the ldap source needs"},
		{"http url", minimal(map[string]any{"url": "https://ldap.example.org"}), "identity[1].url: \"https://ldap.example.org\" is not ldap://"},
		{"url with DN", minimal(map[string]any{"url": "ldap://127.0.0.1/dc=example,dc=org?uid"}), "no DN, attributes or credentials"},
		{"url with credentials", minimal(map[string]any{"url": "ldaps://u:p@ldap.example.org"}), "identity[1].url"},
		{"plaintext to a remote host", minimal(map[string]any{"url": "ldap://ldap.example.org"}), "would carry people's passwords in clear"},
		{"ldaps with start_tls", minimal(map[string]any{"start_tls": true}), "identity[1].start_tls"},
		{"skip verify", minimal(map[string]any{"tls": map[string]any{"insecure_skip_verify": true}}), "identity[1].tls.insecure_skip_verify: rcsso does not skip"},
		{"ca_file missing", minimal(map[string]any{"tls": map[string]any{"ca_file": filepath.Join(dir, "nope")}}), "identity[1].tls.ca_file"},
		{"ca_file not PEM", minimal(map[string]any{"tls": map[string]any{"ca_file": notPEM}}), "holds no PEM certificate"},
		{"no bind_dn", minimal(map[string]any{"bind_dn": nil}), "identity[1].bind_dn"},
		{"bad bind_dn", minimal(map[string]any{"bind_dn": "rcsso"}), "identity[1].bind_dn: \"rcsso\" is not a DN"},
		{"no password", minimal(map[string]any{"bind_password": nil}), "identity[1].bind_password: give"},
		{"both passwords", minimal(map[string]any{"bind_password_file": notPEM}), "are both set"},
		{"empty password file", minimal(map[string]any{"bind_password": nil, "bind_password_file": empty}), "is empty"},
		{"no base", minimal(map[string]any{"user_base_dn": nil}), "identity[1].user_base_dn"},
		{"filter without placeholder", minimal(map[string]any{"user_filter": "(uid=alice)"}), "identity[1].user_filter: \"(uid=alice)\" does not contain {username}"},
		{"filter broken", minimal(map[string]any{"user_filter": "(uid={username}"}), "is not an LDAP search filter"},
		{"groups twice", minimal(map[string]any{"attributes": map[string]any{"groups": "memberOf"}, "group_search": map[string]any{"base_dn": "ou=g,dc=x"}}), "not both"},
		{"group search without base", minimal(map[string]any{"group_search": map[string]any{"filter": "(member={dn})"}}), "identity[1].group_search.base_dn"},
		{"group filter broken", minimal(map[string]any{"group_search": map[string]any{"base_dn": "ou=g,dc=x", "filter": "member={dn}"}}), "identity[1].group_search.filter"},
		{"bad attribute", minimal(map[string]any{"attributes": map[string]any{"email": "mail)(x"}}), "identity[1].attributes.email"},
		{"claims", minimal(map[string]any{"claims": map[string]any{"subject": "sub"}}), "only claims.role_map applies"},
		{"timeout", minimal(map[string]any{"timeout": "2h"}), "identity[1].timeout"},
		{"pool", minimal(map[string]any{"pool_size": 1000}), "identity[1].pool_size"},
		{"unknown key", minimal(map[string]any{"base_dn": "x"}), "identity[1].base_dn: unknown key"},
	}
	for _, c := range cases {
		_, err := validate(c.raw)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error containing %q", c.name, err, c.want)
		}
	}
	// Plain ldap:// is fine to a loopback address, and elsewhere with
	// StartTLS or allow_plaintext.
	for _, ok := range []map[string]any{
		{"url": "ldap://127.0.0.1:3389"}, {"url": "ldap://localhost"}, {"url": "ldap://[::1]:389"},
		{"url": "ldap://ldap.example.org", "start_tls": true},
		{"url": "ldap://ldap.internal", "allow_plaintext": true},
	} {
		if _, err := validate(minimal(ok)); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
}
