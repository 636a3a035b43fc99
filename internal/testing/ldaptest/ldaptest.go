// Package ldaptest gives tests a throw-away OpenLDAP server: Debian's
// slapd with a slapd.conf of the test's own, an empty mdb database in a
// temporary directory, plain LDAP (with StartTLS) and LDAPS on two free
// 127.0.0.1 ports, a certificate for 127.0.0.1 from a CA made for the test,
// the memberof overlay, and the test tree below (People, groups as
// groupOfNames with member). Test support only; production code never
// imports it.
//
// The slapd binary is the one named by RCSSO_TEST_SLAPD (scripts/test.sh
// sets it), else /usr/sbin/slapd, else slapd on PATH; schemas come from
// /etc/ldap/schema and modules from /usr/lib/ldap (Debian's slapd
// package). When no slapd is found and RCSSO_TEST_SLAPD is unset the test
// is skipped; when RCSSO_TEST_SLAPD is set and wrong the test fails (CI
// must not skip silently). A root test process runs slapd as the system
// user "openldap" (which the slapd package creates) and gives it the
// directory.
//
// slapd logs its connections and operations (loglevel stats) to a file the
// test can count in: Accepts (connections), Binds (bind operations for a
// DN).
package ldaptest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/rcsso/rcsso/internal/testing/testcerts"
)

// EnvSlapd names the environment variable holding the path of slapd.
const EnvSlapd = "RCSSO_TEST_SLAPD"

// Where Debian's slapd package keeps its schemas and modules.
const (
	SchemaDir = "/etc/ldap/schema"
	ModuleDir = "/usr/lib/ldap"
)

// The test tree's names. People live under PeopleDN as
// uid=<uid>,PeopleDN (inetOrgPerson), groups under GroupsDN as
// cn=<name>,GroupsDN (groupOfNames), the search account rcsso binds as is
// BindDN with BindPassword. AdminDN (rootdn) may change anything.
const (
	BaseDN        = "dc=example,dc=org"
	PeopleDN      = "ou=people," + BaseDN
	GroupsDN      = "ou=groups," + BaseDN
	BindDN        = "cn=rcsso,ou=services," + BaseDN
	BindPassword  = "rcsso-search-password"
	AdminDN       = "cn=admin," + BaseDN
	AdminPassword = "admin-password"
)

// Person is a person of the test tree.
type Person struct {
	UID, CN, Mail, Password string
	// Groups are the cn of the groups the person is a member of.
	Groups []string
}

// DN is the person's entry.
func (p Person) DN() string { return "uid=" + ldap.EscapeDN(p.UID) + "," + PeopleDN }

// People are the test tree's people. "o(b*r)\\x" has characters that a
// search filter must escape (RFC 4515) in its uid.
var People = []Person{
	{UID: "alice", CN: "Alice Example", Mail: "alice@example.org", Password: "alice-password", Groups: []string{"staff", "chat-admins"}},
	{UID: "bob", CN: "Bob Example", Mail: "bob@example.org", Password: "bob-password", Groups: []string{"staff"}},
	{UID: "carol", CN: "Carol Example", Mail: "carol@example.org", Password: "carol-password"},
	{UID: `o(b*r)\x`, CN: "Obr Example", Mail: "obr@example.org", Password: "obr-password", Groups: []string{"staff"}},
}

// Groups are the test tree's groups (cn), each with at least one member.
var Groups = []string{"staff", "chat-admins"}

// PersonByUID returns the test tree's person uid; it panics for others.
func PersonByUID(uid string) Person {
	for _, p := range People {
		if p.UID == uid {
			return p
		}
	}
	panic("ldaptest: no person " + uid)
}

// Server is a slapd process owned by one test. Its methods must be called
// from the test's goroutine (they may call t.Fatal).
type Server struct {
	t         testing.TB
	bin       string
	dir       string
	port      int // ldap:// (StartTLS)
	tlsPort   int // ldaps://
	cred      *syscall.Credential
	ca        *x509.CertPool
	caFile    string
	logOffset int64

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts a slapd with the test tree for t and stops it, removing
// its files, when the test ends. It skips t when there is no slapd (see
// the package comment).
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: binary(t)}
	if os.Getuid() == 0 {
		cred, err := openldapUser()
		if err != nil {
			t.Fatal(err)
		}
		s.cred = cred
	}
	dir, err := os.MkdirTemp("", "rcsso-ldaptest-")
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	s.dir = dir
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("ldaptest: slapd log (end):\n%s", s.logTail(40))
		}
		_ = os.RemoveAll(s.dir)
	})
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	s.makeCerts()
	if s.cred != nil {
		err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Chown(p, int(s.cred.Uid), int(s.cred.Gid))
		})
		if err != nil {
			t.Fatalf("ldaptest: %v", err)
		}
	}
	// A free port can be taken by someone else between the probe and
	// slapd's bind: try a few.
	for range 5 {
		if s.port, err = freePort(); err == nil {
			s.tlsPort, err = freePort()
		}
		if err != nil {
			t.Fatalf("ldaptest: %v", err)
		}
		if err = s.writeConfig(); err != nil {
			t.Fatalf("ldaptest: %v", err)
		}
		if err = s.start(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	if err := s.load(); err != nil {
		t.Fatalf("ldaptest: loading the test tree: %v", err)
	}
	return s
}

func binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvSlapd); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("ldaptest: %s=%s: %v", EnvSlapd, p, err)
		}
		if _, err := os.Stat(filepath.Join(SchemaDir, "inetorgperson.schema")); err != nil {
			t.Fatalf("ldaptest: %s is set but the schemas are missing: %v", EnvSlapd, err)
		}
		return p
	}
	for _, p := range []string{"/usr/sbin/slapd", "slapd"} {
		if p, err := exec.LookPath(p); err == nil {
			if _, err := os.Stat(filepath.Join(SchemaDir, "inetorgperson.schema")); err == nil {
				return p
			}
		}
	}
	t.Skipf("ldaptest: no slapd (with schemas in %s) and %s is unset (scripts/test.sh installs Debian's slapd)", SchemaDir, EnvSlapd)
	return ""
}

// openldapUser is the credential of the system user "openldap".
func openldapUser() (*syscall.Credential, error) {
	u, err := user.Lookup("openldap")
	if err != nil {
		return nil, fmt.Errorf("ldaptest: running as root; slapd is run as the system user openldap, which is missing: %w "+
			"(apt-get install slapd creates it, or run the tests as another user)", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("ldaptest: user openldap: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// URL is the plain listener, "ldap://127.0.0.1:<port>" (StartTLS works on
// it); it does not change across Stop and Restart.
func (s *Server) URL() string { return "ldap://" + s.Addr() }

// Addr is the plain listener's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// LDAPSURL is the TLS listener, "ldaps://127.0.0.1:<port>".
func (s *Server) LDAPSURL() string {
	return "ldaps://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tlsPort))
}

// CAFile is the PEM file of the CA that issued the server's certificate.
func (s *Server) CAFile() string { return s.caFile }

// RootCAs holds the CA that issued the server's certificate.
func (s *Server) RootCAs() *x509.CertPool { return s.ca }

// writeConfig writes slapd.conf: the schemas, back_mdb and memberof, TLS,
// one database with the memberof overlay. "allow bind_anon_dn" makes the
// server accept an unauthenticated bind (a DN with an empty password, RFC
// 4513 §5.1.2) as many servers do: a client that takes that for a login
// lets anyone in.
func (s *Server) writeConfig() error {
	var b strings.Builder
	for _, schema := range []string{"core", "cosine", "nis", "inetorgperson"} {
		fmt.Fprintf(&b, "include %s\n", filepath.Join(SchemaDir, schema+".schema"))
	}
	fmt.Fprintf(&b, `modulepath %s
moduleload back_mdb
moduleload memberof
pidfile %s
argsfile %s
allow bind_anon_dn
TLSCACertificateFile %s
TLSCertificateFile %s
TLSCertificateKeyFile %s
database mdb
maxsize 16777216
suffix %q
rootdn %q
rootpw %s
directory %s
overlay memberof
access to attrs=userPassword by anonymous auth by self write by * none
access to * by users read by * none
`, ModuleDir, filepath.Join(s.dir, "slapd.pid"), filepath.Join(s.dir, "slapd.args"),
		s.caFile, filepath.Join(s.dir, "server.pem"), filepath.Join(s.dir, "server.key"),
		BaseDN, AdminDN, AdminPassword, filepath.Join(s.dir, "data"))
	p := filepath.Join(s.dir, "slapd.conf")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		return err
	}
	if s.cred != nil {
		return os.Chown(p, int(s.cred.Uid), int(s.cred.Gid))
	}
	return nil
}

func (s *Server) logPath() string { return filepath.Join(s.dir, "slapd.log") }

// start runs slapd in the foreground (-d stats: its log on stderr) and
// waits until it answers an anonymous read of the root DSE (10 s at most).
func (s *Server) start() error {
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, "-d", "stats", "-f", filepath.Join(s.dir, "slapd.conf"),
		"-h", s.URL()+"/ "+s.LDAPSURL()+"/")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr(s.cred)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting slapd: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(10 * time.Second)
	for {
		if err = s.ping(); err == nil {
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			return fmt.Errorf("slapd on ports %d, %d exited at start: %v\n%s", s.port, s.tlsPort, err, s.logTail(20))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return fmt.Errorf("slapd did not answer within 10 s: %v\n%s", err, s.logTail(20))
		}
	}
}

func (s *Server) ping() error {
	c, err := ldap.DialURL(s.URL(), ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(time.Second)
	_, err = c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 1, false,
		"(objectClass=*)", []string{"namingContexts"}, nil))
	return err
}

// Admin returns a connection bound as AdminDN, closed when the test ends.
func (s *Server) Admin() *ldap.Conn {
	s.t.Helper()
	c, err := ldap.DialURL(s.URL(), ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		s.t.Fatalf("ldaptest: %v", err)
	}
	s.t.Cleanup(func() { _ = c.Close() })
	c.SetTimeout(10 * time.Second)
	if err := c.Bind(AdminDN, AdminPassword); err != nil {
		s.t.Fatalf("ldaptest: binding as %s: %v", AdminDN, err)
	}
	return c
}

// load adds the test tree through the protocol (so the memberof overlay
// fills memberOf).
func (s *Server) load() error {
	c, err := ldap.DialURL(s.URL(), ldap.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(10 * time.Second)
	if err := c.Bind(AdminDN, AdminPassword); err != nil {
		return err
	}
	add := func(dn string, attrs map[string][]string) error {
		r := ldap.NewAddRequest(dn, nil)
		for k, v := range attrs {
			r.Attribute(k, v)
		}
		if err := c.Add(r); err != nil {
			return fmt.Errorf("adding %s: %w", dn, err)
		}
		return nil
	}
	steps := []struct {
		dn    string
		attrs map[string][]string
	}{
		{BaseDN, map[string][]string{"objectClass": {"dcObject", "organization"}, "dc": {"example"}, "o": {"Example"}}},
		{PeopleDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"people"}}},
		{GroupsDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"groups"}}},
		{"ou=services," + BaseDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"services"}}},
		{BindDN, map[string][]string{"objectClass": {"organizationalRole", "simpleSecurityObject"}, "cn": {"rcsso"}, "userPassword": {BindPassword}}},
	}
	for _, st := range steps {
		if err := add(st.dn, st.attrs); err != nil {
			return err
		}
	}
	for _, p := range People {
		if err := add(p.DN(), map[string][]string{
			"objectClass": {"inetOrgPerson"}, "uid": {p.UID}, "cn": {p.CN}, "sn": {p.CN},
			"mail": {p.Mail}, "userPassword": {p.Password},
		}); err != nil {
			return err
		}
	}
	for _, g := range Groups {
		var members []string
		for _, p := range People {
			for _, pg := range p.Groups {
				if pg == g {
					members = append(members, p.DN())
				}
			}
		}
		if err := add("cn="+g+","+GroupsDN, map[string][]string{"objectClass": {"groupOfNames"}, "cn": {g}, "member": members}); err != nil {
			return err
		}
	}
	return nil
}

// Stop shuts slapd down (SIGTERM) and waits for it to exit; idempotent.
// Connections fail until Restart.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill kills slapd (SIGKILL), as a crash would, and waits for it.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// Restart starts slapd again on the same ports and data (a no-op while it
// runs) and waits until it answers.
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("ldaptest: restart: %v", err)
	}
}

// Mark notes the end of slapd's log so far: Accepts and Binds count from
// the last Mark (or the start).
func (s *Server) Mark() {
	s.t.Helper()
	fi, err := os.Stat(s.logPath())
	if err != nil {
		s.t.Fatalf("ldaptest: %v", err)
	}
	s.logOffset = fi.Size()
}

// logSince is slapd's log since the last Mark. slapd writes an
// operation's line before it answers, so an operation a client saw
// answered is in it.
func (s *Server) logSince() []string {
	s.t.Helper()
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		s.t.Fatalf("ldaptest: %v", err)
	}
	if int64(len(b)) >= s.logOffset {
		b = b[s.logOffset:]
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// Accepts is how many connections slapd accepted since the last Mark.
func (s *Server) Accepts() int {
	s.t.Helper()
	n := 0
	for _, l := range s.logSince() {
		if strings.Contains(l, " ACCEPT from ") {
			n++
		}
	}
	return n
}

// Binds is how many bind operations for dn slapd received since the last
// Mark (the DN as the client sent it, compared case-insensitively).
func (s *Server) Binds(dn string) int {
	s.t.Helper()
	n := 0
	want := strings.ToLower(` BIND dn="` + dn + `" method=`)
	for _, l := range s.logSince() {
		if strings.Contains(strings.ToLower(l), want) {
			n++
		}
	}
	return n
}

// logTail is the last n lines of slapd's whole log.
func (s *Server) logTail(n int) string {
	b, _ := os.ReadFile(s.logPath())
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// makeCerts writes ca.pem, server.pem and server.key for 127.0.0.1 into
// the server's directory (testcerts.Loopback).
func (s *Server) makeCerts() {
	s.t.Helper()
	ca, err := testcerts.Loopback(s.dir, "ldaptest")
	if err != nil {
		s.t.Fatalf("ldaptest: making TLS certificates: %v", err)
	}
	s.ca = ca
	s.caFile = filepath.Join(s.dir, "ca.pem")
}

// TLSConfig trusts the server's CA (for tests that dial it themselves).
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.ca, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}
