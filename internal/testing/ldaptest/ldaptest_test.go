package ldaptest

import (
	"net"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

func dial(t *testing.T, url string, s *Server) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(url, ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}), ldap.DialWithTLSConfig(s.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	c.SetTimeout(10 * time.Second)
	return c
}

// The test tree is there: every person binds with their password, the
// memberof overlay lists their groups, and slapd's log counts the binds
// and connections.
func TestTree(t *testing.T) {
	s := Start(t)
	s.Mark()
	c := dial(t, s.URL(), s)
	for _, p := range People {
		if err := c.Bind(p.DN(), p.Password); err != nil {
			t.Fatalf("bind as %s: %v", p.UID, err)
		}
		r, err := c.Search(ldap.NewSearchRequest(p.DN(), ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=*)", []string{"memberOf", "mail"}, nil))
		if err != nil || len(r.Entries) != 1 {
			t.Fatalf("reading %s: %v", p.DN(), err)
		}
		if got := r.Entries[0].GetAttributeValues("memberOf"); len(got) != len(p.Groups) {
			t.Fatalf("%s memberOf %v, want the groups %v", p.UID, got, p.Groups)
		}
	}
	if err := c.Bind(BindDN, BindPassword); err != nil {
		t.Fatal(err)
	}
	if err := c.Bind(People[0].DN(), "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("a wrong password: %v", err)
	}
	if n := s.Binds(People[0].DN()); n != 2 {
		t.Fatalf("Binds(alice) = %d, want 2", n)
	}
	if n := s.Accepts(); n != 1 {
		t.Fatalf("Accepts() = %d, want 1", n)
	}
	// The server accepts an unauthenticated bind: the threat a login
	// must refuse itself.
	if err := c.UnauthenticatedBind(People[0].DN()); err != nil {
		t.Fatalf("unauthenticated bind refused: %v (the harness should accept it, as many servers do)", err)
	}
}

// LDAPS and StartTLS work with the test CA; Stop and Restart keep the tree.
func TestTLSAndRestart(t *testing.T) {
	s := Start(t)
	c := dial(t, s.LDAPSURL(), s)
	if err := c.Bind(BindDN, BindPassword); err != nil {
		t.Fatalf("LDAPS: %v", err)
	}
	c2 := dial(t, s.URL(), s)
	if err := c2.StartTLS(s.TLSConfig()); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	if err := c2.Bind(BindDN, BindPassword); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := ldap.DialURL(s.URL(), ldap.DialWithDialer(&net.Dialer{Timeout: time.Second})); err == nil {
		t.Fatal("dial succeeded while slapd is stopped")
	}
	s.Restart()
	c3 := dial(t, s.URL(), s)
	if err := c3.Bind(People[1].DN(), People[1].Password); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}
