package ldap

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/testing/ldaptest"
	"github.com/rcsso/rcsso/internal/websession"
)

// openSource opens an ldap source named "corp" on srv's test tree with
// the options over the defaults (plain ldap://, the search account,
// people below ldaptest.PeopleDN), closed when the test ends.
func openSource(t *testing.T, srv *ldaptest.Server, opts map[string]any) *Source {
	t.Helper()
	raw := map[string]any{"url": srv.URL(), "bind_dn": ldaptest.BindDN, "bind_password": ldaptest.BindPassword,
		"user_base_dn": ldaptest.PeopleDN}
	maps.Copy(raw, opts)
	for k, v := range raw {
		if v == nil {
			delete(raw, k)
		}
	}
	b := config.Block{Path: "identity[0]", Raw: raw}
	var c Config
	if err := b.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(b); err != nil {
		t.Fatal(err)
	}
	st := memory.New()
	sessions := websession.New(st, websession.Options{CookieName: "rcsso_session", SameSite: http.SameSiteLaxMode, TTL: time.Hour})
	src, err := c.Open(t.Context(), identity.Deps{Name: "corp", Store: st, Sessions: sessions, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*Source)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func login(t *testing.T, s *Source, username, password string) (identity.Identity, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	return s.Authenticate(ctx, username, password)
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

// A person logs in with their directory password; the identity carries
// the directory's attributes and groups (memberOf), and the role map
// turns groups into roles.
func TestLogin(t *testing.T) {
	srv := ldaptest.Start(t)
	s := openSource(t, srv, map[string]any{"claims": map[string]any{"role_map": map[string]any{"chat-admins": "admin"}}})
	alice := ldaptest.PersonByUID("alice")
	id, err := login(t, s, "alice", alice.Password)
	if err != nil {
		t.Fatal(err)
	}
	want := identity.Identity{Subject: "corp:alice", Source: "corp", Username: "alice", Name: "Alice Example",
		Email: "alice@example.org", Roles: []string{"admin"}, Groups: []string{"chat-admins", "staff"}}
	id.Groups = sorted(id.Groups)
	if id.Subject != want.Subject || id.Source != want.Source || id.Username != want.Username || id.Name != want.Name ||
		id.Email != want.Email || id.EmailVerified || !slices.Equal(id.Roles, want.Roles) || !slices.Equal(id.Groups, want.Groups) {
		t.Fatalf("identity %+v, want %+v", id, want)
	}
	// Bob is in staff only: no role from the map, but roles are managed
	// (an empty list, not nil).
	id, err = login(t, s, "bob", ldaptest.PersonByUID("bob").Password)
	if err != nil || id.Roles == nil || len(id.Roles) != 0 || !slices.Equal(id.Groups, []string{"staff"}) {
		t.Fatalf("bob: %+v, %v", id, err)
	}
	// Carol is in no group: the directory says so (an empty list).
	id, err = login(t, s, "carol", ldaptest.PersonByUID("carol").Password)
	if err != nil || id.Groups == nil || len(id.Groups) != 0 {
		t.Fatalf("carol: %+v, %v", id, err)
	}
	// The user name as typed does not matter beyond LDAP's own matching:
	// the subject and user name are the directory's.
	id, err = login(t, s, "  ALICE ", alice.Password)
	if err != nil || id.Subject != "corp:alice" || id.Username != "alice" {
		t.Fatalf("ALICE: %+v, %v", id, err)
	}
}

// email_verified: true passes the directory's word on; subject_attribute
// entryUUID gives subjects that survive a rename.
func TestLoginSubjectAttributeAndEmailVerified(t *testing.T) {
	srv := ldaptest.Start(t)
	s := openSource(t, srv, map[string]any{"subject_attribute": "entryUUID", "email_verified": true})
	id, err := login(t, s, "alice", ldaptest.PersonByUID("alice").Password)
	if err != nil {
		t.Fatal(err)
	}
	uuid, ok := strings.CutPrefix(id.Subject, "corp:")
	if !ok || len(uuid) != 36 || strings.ToLower(uuid) != uuid || !id.EmailVerified || id.Username != "alice" {
		t.Fatalf("identity %+v", id)
	}
	// A multi-valued subject attribute is refused: which value is the
	// person?
	s = openSource(t, srv, map[string]any{"subject_attribute": "memberOf"})
	if _, err := login(t, s, "alice", ldaptest.PersonByUID("alice").Password); !errors.Is(err, identity.ErrSourceUnavailable) ||
		!strings.Contains(err.Error(), "subject_attribute") {
		t.Fatalf("multi-valued subject attribute: %v", err)
	}
}

// A wrong password and an unknown user are the same error, after the
// same directory work: a search and two binds each (the search account's,
// then the person's or, for nobody, the search account's again).
func TestWrongPasswordAndUnknownUser(t *testing.T) {
	srv := ldaptest.Start(t)
	alice := ldaptest.PersonByUID("alice")
	cases := []struct{ name, user, password string }{
		{"wrong password", "alice", "not-alices-password"},
		{"unknown user", "mallory", "some-password"},
		{"another's password", "alice", ldaptest.PersonByUID("bob").Password},
		{"whitespace password", "alice", " "},
	}
	binds := map[string]int{}
	for _, c := range cases {
		s := openSource(t, srv, nil)
		srv.Mark()
		_, err := login(t, s, c.user, c.password)
		if !errors.Is(err, identity.ErrBadCredentials) {
			t.Fatalf("%s: %v, want ErrBadCredentials", c.name, err)
		}
		binds[c.name] = srv.Binds(ldaptest.BindDN) + srv.Binds(alice.DN())
		// A second attempt on the same (pooled) connection costs the same.
		srv.Mark()
		_, _ = login(t, s, c.user, c.password)
		if n := srv.Binds(ldaptest.BindDN) + srv.Binds(alice.DN()); n != binds[c.name] {
			t.Fatalf("%s: %d binds on a reused connection, %d on a new one", c.name, n, binds[c.name])
		}
	}
	if binds["wrong password"] != 2 || binds["unknown user"] != 2 {
		t.Fatalf("binds per attempt: %v; want 2 for a wrong password and for an unknown user", binds)
	}
}

// An empty password is refused before anything reaches the directory,
// although the directory would accept it as an unauthenticated bind.
func TestEmptyPasswordRefusedWithoutBind(t *testing.T) {
	srv := ldaptest.Start(t)
	alice := ldaptest.PersonByUID("alice")
	// The threat is real: slapd here answers a bind as alice with no
	// password with success (RFC 4513 §5.1.2, "allow bind_anon_dn").
	c, err := goldap.DialURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.UnauthenticatedBind(alice.DN()); err != nil {
		t.Fatalf("the server refuses unauthenticated binds (%v): this test would prove nothing", err)
	}
	s := openSource(t, srv, nil)
	srv.Mark()
	for _, u := range []string{"alice", alice.DN(), ""} {
		if _, err := login(t, s, u, ""); !errors.Is(err, identity.ErrBadCredentials) {
			t.Fatalf("user %q with an empty password: %v", u, err)
		}
	}
	if n, a := srv.Binds(alice.DN()), srv.Accepts(); n != 0 || a != 0 {
		t.Fatalf("an empty password reached the directory: %d binds as alice, %d connections", n, a)
	}
}

// User names crafted to widen the search filter (RFC 4515 injection) log
// nobody in, with or without a real password; a real uid with those
// characters logs in.
func TestInjection(t *testing.T) {
	srv := ldaptest.Start(t)
	s := openSource(t, srv, map[string]any{"user_filter": "(&(objectClass=inetOrgPerson)(uid={username}))"})
	alice := ldaptest.PersonByUID("alice")
	for _, u := range []string{
		"*", "a*", "al*e", "*)(uid=*", "alice)(|(uid=*", "*))(|(uid=*", "alice)(objectClass=*",
		`\`, `\2a`, "(", ")", "alice\x00", "alice\x00)(uid=*", strings.Repeat("a", 300), strings.Repeat("*", 100_000),
		"ali\nce", "\xff",
	} {
		for _, pw := range []string{alice.Password, "x"} {
			id, err := login(t, s, u, pw)
			if !errors.Is(err, identity.ErrBadCredentials) {
				t.Fatalf("user name %q: %+v, %v; want ErrBadCredentials", u, id, err)
			}
		}
	}
	obr := ldaptest.PersonByUID(`o(b*r)\x`)
	id, err := login(t, s, obr.UID, obr.Password)
	if err != nil || id.Username != obr.UID || id.Subject != "corp:"+obr.UID {
		t.Fatalf("%q: %+v, %v", obr.UID, id, err)
	}
	// Obr's password does not open another account matching a pattern.
	if _, err := login(t, s, "o*", obr.Password); !errors.Is(err, identity.ErrBadCredentials) {
		t.Fatalf("o* with obr's password: %v", err)
	}
}

// Groups by a group search (groupOfNames member={dn}), for people whose
// DN has characters the filter must escape too.
func TestGroupSearch(t *testing.T) {
	srv := ldaptest.Start(t)
	s := openSource(t, srv, map[string]any{"group_search": map[string]any{"base_dn": ldaptest.GroupsDN}})
	for _, p := range ldaptest.People {
		id, err := login(t, s, p.UID, p.Password)
		if err != nil {
			t.Fatalf("%s: %v", p.UID, err)
		}
		want := sorted(p.Groups)
		if want == nil {
			want = []string{}
		}
		if got := sorted(id.Groups); !slices.Equal(got, want) || id.Groups == nil {
			t.Fatalf("%s: groups %q, want %q", p.UID, id.Groups, want)
		}
	}
	// A group search by user name (posixGroup-style memberUid) finds
	// nothing here: groupOfNames has no memberUid.
	s = openSource(t, srv, map[string]any{"group_search": map[string]any{"base_dn": ldaptest.GroupsDN, "filter": "(memberUid={username})"}})
	id, err := login(t, s, "alice", ldaptest.PersonByUID("alice").Password)
	if err != nil || id.Groups == nil || len(id.Groups) != 0 {
		t.Fatalf("memberUid search: %+v, %v", id, err)
	}
}

// StartTLS and LDAPS check the directory's certificate; a certificate
// rcsso does not trust stops the login before a password is sent.
func TestTLS(t *testing.T) {
	srv := ldaptest.Start(t)
	alice := ldaptest.PersonByUID("alice")
	for _, c := range []struct {
		name string
		opts map[string]any
		ok   bool
	}{
		{"StartTLS", map[string]any{"start_tls": true, "tls": map[string]any{"ca_file": srv.CAFile()}}, true},
		{"LDAPS", map[string]any{"url": srv.LDAPSURL(), "tls": map[string]any{"ca_file": srv.CAFile()}}, true},
		{"StartTLS, untrusted CA", map[string]any{"start_tls": true}, false},
		{"LDAPS, untrusted CA", map[string]any{"url": srv.LDAPSURL()}, false},
		{"LDAPS, wrong name", map[string]any{"url": srv.LDAPSURL(), "tls": map[string]any{"ca_file": srv.CAFile(), "server_name": "ldap.example.org"}}, false},
	} {
		s := openSource(t, srv, c.opts)
		srv.Mark()
		id, err := login(t, s, "alice", alice.Password)
		if c.ok {
			if err != nil || id.Subject != "corp:alice" {
				t.Fatalf("%s: %+v, %v", c.name, id, err)
			}
			conn := <-s.pool.idle
			state, tlsOK := conn.TLSConnectionState()
			s.pool.put(conn)
			if !tlsOK || !state.HandshakeComplete {
				t.Fatalf("%s: the connection is not TLS", c.name)
			}
			continue
		}
		if !errors.Is(err, identity.ErrSourceUnavailable) || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("%s: %v, want ErrSourceUnavailable for the certificate", c.name, err)
		}
		if n := srv.Binds(ldaptest.BindDN) + srv.Binds(alice.DN()); n != 0 {
			t.Fatalf("%s: %d binds went to a directory rcsso does not trust", c.name, n)
		}
	}
}

// A directory that is down is ErrSourceUnavailable, not a wrong
// password; when it is back, the next login works on a new connection.
func TestDirectoryDown(t *testing.T) {
	srv := ldaptest.Start(t)
	s := openSource(t, srv, nil)
	alice := ldaptest.PersonByUID("alice")
	if _, err := login(t, s, "alice", alice.Password); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	_, err := login(t, s, "alice", alice.Password)
	if !errors.Is(err, identity.ErrSourceUnavailable) || errors.Is(err, identity.ErrBadCredentials) {
		t.Fatalf("directory down: %v", err)
	}
	if _, err := login(t, s, "alice", "wrong"); !errors.Is(err, identity.ErrSourceUnavailable) {
		t.Fatalf("directory down, wrong password: %v", err)
	}
	srv.Restart()
	if _, err := login(t, s, "alice", alice.Password); err != nil {
		t.Fatalf("first login after the directory came back: %v", err)
	}
	// A killed directory (connections reset, not closed) is the same.
	if _, err := login(t, s, "alice", alice.Password); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	srv.Restart()
	if _, err := login(t, s, "alice", alice.Password); err != nil {
		t.Fatalf("first login after a crash and restart: %v", err)
	}
}

// Check (the /readyz line of an LDAP source) follows the directory: ok
// while it answers, an error naming the cause while it is down or refuses
// the search account, ok again once it is back.
func TestCheck(t *testing.T) {
	srv := ldaptest.Start(t)
	s := openSource(t, srv, nil)
	if err := s.Check(t.Context()); err != nil {
		t.Fatalf("directory up: %v", err)
	}
	srv.Stop()
	if err := s.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "ldap corp") {
		t.Fatalf("directory down: %v", err)
	}
	srv.Restart()
	if err := s.Check(t.Context()); err != nil {
		t.Fatalf("directory back: %v", err)
	}
	wrong := openSource(t, srv, map[string]any{"bind_password": "wrong"})
	if err := wrong.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "bind_dn") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("search account refused: %v", err)
	}
}

// A directory that accepts connections but never answers costs a login
// its timeout, then ErrSourceUnavailable; a visitor who leaves ends the
// wait with their context's error.
func TestDirectoryHangs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})
	b := config.Block{Path: "identity[0]", Raw: map[string]any{"url": "ldap://" + ln.Addr().String(), "bind_dn": ldaptest.BindDN,
		"bind_password": "x", "user_base_dn": ldaptest.PeopleDN, "timeout": "300ms"}}
	var c Config
	if err := errors.Join(b.Decode(&c), c.Validate(b)); err != nil {
		t.Fatal(err)
	}
	src, err := c.Open(t.Context(), identity.Deps{Name: "corp"})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*Source)
	defer s.Close()
	start := time.Now()
	_, err = s.Authenticate(t.Context(), "alice", "pw")
	if d := time.Since(start); !errors.Is(err, identity.ErrSourceUnavailable) || !strings.Contains(err.Error(), "timeout") || d > 5*time.Second {
		t.Fatalf("after %v: %v; want ErrSourceUnavailable naming the timeout", d, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Authenticate(ctx, "alice", "pw"); !errors.Is(err, context.Canceled) || errors.Is(err, identity.ErrSourceUnavailable) {
		t.Fatalf("canceled: %v", err)
	}
}

// The search account's wrong password is the deployment's fault, not the
// visitor's: ErrSourceUnavailable naming bind_dn.
func TestSearchAccountRefused(t *testing.T) {
	srv := ldaptest.Start(t)
	s := openSource(t, srv, map[string]any{"bind_password": "wrong"})
	_, err := login(t, s, "alice", ldaptest.PersonByUID("alice").Password)
	if !errors.Is(err, identity.ErrSourceUnavailable) || !strings.Contains(err.Error(), "bind_dn") {
		t.Fatalf("%v", err)
	}
	// A user_base_dn that does not exist says so.
	s = openSource(t, srv, map[string]any{"user_base_dn": "ou=nobody," + ldaptest.BaseDN})
	if _, err := login(t, s, "alice", "x"); !errors.Is(err, identity.ErrSourceUnavailable) || !strings.Contains(err.Error(), "user_base_dn") {
		t.Fatalf("%v", err)
	}
}

// A user filter that matches several entries logs nobody in.
func TestAmbiguousFilter(t *testing.T) {
	srv := ldaptest.Start(t)
	s := openSource(t, srv, map[string]any{"user_filter": "(|(uid={username})(objectClass=inetOrgPerson))"})
	if _, err := login(t, s, "alice", ldaptest.PersonByUID("alice").Password); !errors.Is(err, identity.ErrBadCredentials) {
		t.Fatalf("%v", err)
	}
}

// Logins share at most pool_size connections, reused across logins.
func TestPoolBounded(t *testing.T) {
	srv := ldaptest.Start(t)
	s := openSource(t, srv, map[string]any{"pool_size": 2})
	srv.Mark()
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		p := ldaptest.People[i%len(ldaptest.People)]
		wg.Go(func() {
			pw := p.Password
			if i%3 == 0 {
				pw = "wrong"
			}
			_, err := login(t, s, p.UID, pw)
			if (pw == "wrong") != errors.Is(err, identity.ErrBadCredentials) || (pw != "wrong" && err != nil) {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a login in the crowd: %v", err)
	}
	dials, open := s.pool.stats()
	if n := srv.Accepts(); n > 2 || dials > 2 || open > 2 {
		t.Fatalf("40 logins opened %d connections (%d dials, %d open), pool_size 2", n, dials, open)
	}
	for range 10 {
		if _, err := login(t, s, "bob", ldaptest.PersonByUID("bob").Password); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.Accepts(); n > 2 {
		t.Fatalf("sequential logins opened new connections: %d in all", n)
	}
	// Close closes the idle connections; later logins are refused.
	_ = s.Close()
	if _, open := s.pool.stats(); open != 0 {
		t.Fatalf("%d connections open after Close", open)
	}
	if _, err := login(t, s, "bob", ldaptest.PersonByUID("bob").Password); !errors.Is(err, identity.ErrSourceUnavailable) {
		t.Fatalf("after Close: %v", err)
	}
}

// BenchmarkAuthenticate measures a login against slapd on loopback over a
// warm pool: a right password, a wrong one and an unknown user (which
// should cost the same as a wrong password).
func BenchmarkAuthenticate(b *testing.B) {
	srv := ldaptest.Start(b)
	alice := ldaptest.PersonByUID("alice")
	for _, c := range []struct{ name, user, password string }{
		{"ok", "alice", alice.Password},
		{"wrong password", "alice", "wrong"},
		{"unknown user", "mallory", "wrong"},
	} {
		b.Run(c.name, func(b *testing.B) {
			raw := map[string]any{"url": srv.URL(), "bind_dn": ldaptest.BindDN, "bind_password": ldaptest.BindPassword,
				"user_base_dn": ldaptest.PeopleDN}
			blk := config.Block{Path: "identity[0]", Raw: raw}
			var cfg Config
			if err := errors.Join(blk.Decode(&cfg), cfg.Validate(blk)); err != nil {
				b.Fatal(err)
			}
			src, err := cfg.Open(b.Context(), identity.Deps{Name: "corp"})
			if err != nil {
				b.Fatal(err)
			}
			s := src.(*Source)
			defer s.Close()
			for b.Loop() {
				_, _ = s.Authenticate(b.Context(), c.user, c.password)
			}
		})
	}
}

// Memberof values that are not DNs are dropped; names come from the
// first RDN.
func FuzzGroupNames(f *testing.F) {
	for _, s := range []string{"cn=staff,ou=groups,dc=example,dc=org", "", "cn=a\\,b,dc=x", "not a dn", "cn=#4142", "=,="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, dn string) {
		names := groupNames([]string{dn, "cn=staff,ou=groups,dc=example,dc=org"})
		if len(names) == 0 || len(names) > 2 || names[len(names)-1] != "staff" {
			t.Fatalf("groupNames(%q) = %q", dn, names)
		}
	})
}
