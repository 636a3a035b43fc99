// Package pgtest gives tests a throw-away PostgreSQL server: initdb in a
// temporary directory, then postgres listening on a free 127.0.0.1 port
// (TCP only, no Unix socket), trust authentication for the superuser
// "postgres", fsync off. Test support only; production code never imports
// it.
//
// The binaries (initdb, postgres) are taken from the directory named by
// RCSSO_TEST_PG_BIN (scripts/test.sh sets it, e.g.
// /usr/lib/postgresql/15/bin), else from the newest
// /usr/lib/postgresql/*/bin, else from PATH. When none is found and
// RCSSO_TEST_PG_BIN is unset the test is skipped; when RCSSO_TEST_PG_BIN is
// set and wrong the test fails. initdb and postgres refuse to run as root:
// a root test process runs them as the system user "postgres" (which
// Debian's postgresql package creates) and gives it the directory.
//
// Two ways to use it:
//
//   - Database(t): a fresh, empty database on a server shared by the whole
//     test binary, started on first use. The package's TestMain must call
//     Main(m), which stops that server and removes its files when the tests
//     end.
//   - Start(t): a server of the test's own, which the test may Stop, Kill
//     and Restart (to test a database that goes away); stopped and removed
//     when the test ends.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// EnvBin names the environment variable holding the directory with initdb
// and postgres.
const EnvBin = "RCSSO_TEST_PG_BIN"

// errNoBinaries means no PostgreSQL binaries were found and EnvBin is unset:
// the caller skips.
var errNoBinaries = errors.New("pgtest: no PostgreSQL binaries (initdb, postgres) found; set " + EnvBin +
	" to their directory, e.g. /usr/lib/postgresql/15/bin (apt-get install postgresql)")

// BinDir returns the directory holding initdb and postgres, found as the
// package comment says. The error is errNoBinaries (skip) when nothing is
// found and EnvBin is unset, and a failure otherwise.
func BinDir() (string, error) {
	if dir := os.Getenv(EnvBin); dir != "" {
		for _, name := range []string{"initdb", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				return "", fmt.Errorf("pgtest: %s=%s: %w", EnvBin, dir, err)
			}
		}
		return dir, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	slices.SortFunc(found, func(a, b string) int { return versionOf(a) - versionOf(b) })
	if len(found) > 0 {
		return filepath.Dir(found[len(found)-1]), nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errNoBinaries
}

// versionOf is the major version in /usr/lib/postgresql/<major>/bin/initdb.
func versionOf(path string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return n
}

// Server is one throw-away PostgreSQL: a data directory and, while it
// runs, a postgres process. Its address and data stay the same across Stop
// and Restart.
type Server struct {
	bin  string
	dir  string // temporary directory: data/ and postgres.log
	port int
	cred *syscall.Credential // nil unless the test runs as root

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	log  *os.File
}

// NewServer creates a data directory (initdb) and starts postgres on a free
// loopback port. The caller must Close it. It returns an error wrapping
// errNoBinaries when there is nothing to run (see BinDir).
func NewServer() (_ *Server, err error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin}
	if os.Getuid() == 0 {
		if s.cred, err = postgresUser(); err != nil {
			return nil, err
		}
	}
	if s.dir, err = os.MkdirTemp("", "rcsso-pgtest-"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	if s.cred != nil {
		if err := os.Chown(s.dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	if s.log, err = os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.dataDir(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = s.procAttr()
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	// A port found free may be taken before postgres binds it: try a few.
	for range 5 {
		if s.port, err = freePort(); err != nil {
			return nil, err
		}
		if err = s.Restart(); err == nil {
			return s, nil
		}
	}
	return nil, err
}

// postgresUser is the credential of the system user "postgres".
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, and initdb and postgres refuse root: %w "+
			"(create the system user postgres, which apt-get install postgresql does, or run the tests as another user)", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgtest: user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// URL is the connection URL of database db as the superuser, e.g.
// "postgres://postgres@127.0.0.1:40123/db?sslmode=disable". It does not
// change across Stop and Restart.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// Addr is the server's "127.0.0.1:port".
func (s *Server) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.port) }

// Restart starts postgres again on the same port and data (a no-op while it
// runs) and waits until it accepts connections (at most a minute). It fails
// when the port was taken meanwhile; the error carries the server log.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	cmd := exec.Command(filepath.Join(s.bin, "postgres"), "-D", s.dataDir(),
		"-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=",
		"-c", "fsync=off", // the OS keeps committed data across a postgres crash; the machine never crashes in a test
		"-c", "full_page_writes=off",
		"-c", "max_connections=300",
		"-c", "shared_buffers=32MB",
	)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	cmd.SysProcAttr = s.procAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: starting postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgconn.Connect(ctx, s.URL("postgres"))
		cancel()
		if err == nil {
			_ = c.Close(context.Background())
			return nil
		}
		select {
		case <-done:
			s.cmd, s.done = nil, nil
			return fmt.Errorf("pgtest: postgres exited at start (port %d): %w\n%s", s.port, err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("pgtest: postgres did not accept connections within a minute: %w\n%s", err, s.logTail()),
				s.signalLocked(syscall.SIGQUIT))
		}
	}
}

// Stop shuts postgres down the way an operator does ("fast" shutdown:
// sessions are ended, data is checkpointed) and waits for it to exit. It is
// idempotent; connections fail until Restart.
func (s *Server) Stop() error { return s.signal(syscall.SIGINT) }

// Kill ends postgres as a crash would ("immediate" shutdown: no checkpoint;
// the next start recovers from the write-ahead log) and waits for it to
// exit.
func (s *Server) Kill() error { return s.signal(syscall.SIGQUIT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.signalLocked(sig)
}

func (s *Server) signalLocked(sig syscall.Signal) error {
	if s.cmd == nil {
		return nil
	}
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("pgtest: signalling postgres: %w", err)
	}
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("pgtest: postgres did not stop within 30 s of %v; killed\n%s", sig, s.logTail())
	}
}

// Close stops the server and removes its directory.
func (s *Server) Close() error {
	err := s.Kill()
	if s.log != nil {
		err = errors.Join(err, s.log.Close())
	}
	if s.dir != "" {
		err = errors.Join(err, os.RemoveAll(s.dir))
	}
	return err
}

// logTail is the end of the server log, for failure messages.
func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// Exec runs sql (statements without arguments) on the database that url
// names.
func Exec(ctx context.Context, url, sql string) error {
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer c.Close(context.WithoutCancel(ctx))
	if _, err := c.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgtest: %s: %w", sql, err)
	}
	return nil
}

// CreateDatabase creates an empty database named after t (see
// DatabaseName), drops it when t ends, and returns its URL.
func (s *Server) CreateDatabase(t testing.TB) string {
	t.Helper()
	name := DatabaseName(t)
	if err := Exec(t.Context(), s.URL("postgres"), `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE: a test that failed half-way may have left connections.
		if err := Exec(ctx, s.URL("postgres"), `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil && s.running() {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s.URL(name)
}

func (s *Server) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// DatabaseName is a fresh database name for t: "t_", up to 40 characters of
// the test name (lower-case letters, digits and '_' only) and 8 random
// characters; at most 51 bytes, under PostgreSQL's 63.
func DatabaseName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return "t_" + b.String() + "_" + strings.ToLower(rand.Text()[:8])
}

// Start starts a server of t's own and closes it when t ends. It skips t
// when there are no PostgreSQL binaries and EnvBin is unset.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := NewServer()
	if errors.Is(err, errNoBinaries) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	return s
}

var shared struct {
	once sync.Once
	srv  *Server
	err  error
}

// Database returns the URL of a fresh, empty database on the test binary's
// shared server (started on first use), dropped when t ends. It skips t
// when there are no PostgreSQL binaries and EnvBin is unset. The package
// must run its tests through Main.
func Database(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() { shared.srv, shared.err = NewServer() })
	if errors.Is(shared.err, errNoBinaries) {
		t.Skip(shared.err)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv.CreateDatabase(t)
}

// Main runs the tests and then closes the shared server, if one was
// started. Use it as TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		if err := shared.srv.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}
