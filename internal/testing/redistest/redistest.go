// Package redistest gives tests a throw-away Redis: a redis-server process
// of its own per test, listening on a free 127.0.0.1 port with its data in
// t.TempDir(), stopped when the test ends. Test support only; production
// code never imports it.
//
// The binary is the one named by the environment variable
// RCSSO_TEST_REDIS_SERVER (scripts/test.sh sets it), else redis-server on
// PATH. When neither exists the test is skipped; when the variable names a
// file that cannot run, the test fails (CI must not skip silently). A
// valkey-server binary takes the same flags and may be named instead.
package redistest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/testing/testcerts"
)

// EnvServer names the environment variable holding the path of the
// redis-server (or valkey-server) binary.
const EnvServer = "RCSSO_TEST_REDIS_SERVER"

// Options shape the server StartServer runs. The zero value is a plain,
// non-persistent server without a password.
type Options struct {
	// Durable turns on the append-only file with appendfsync always: every
	// write acknowledged to a client is on disk, so it survives Stop, Kill
	// and Restart.
	Durable bool
	// Password is required from clients (requirepass) and put in URL.
	Password string
	// TLS serves TLS only (tls-port, no plain port) with a certificate for
	// 127.0.0.1 issued by a CA made for the test (see RootCAs); URL is then
	// rediss://.
	TLS bool
}

// Server is a redis-server process owned by one test. Its methods must be
// called from the test's goroutine (they may call t.Fatal).
type Server struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	opts Options
	ca   *x509.CertPool

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start returns the URL of an empty database ("redis://127.0.0.1:<port>/0")
// on a plain server of t's own, stopped when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	return StartServer(t, Options{}).URL()
}

// StartServer starts a redis-server for t as opts say and stops it when
// the test ends. It skips t when no redis-server can be found (see the
// package comment).
func StartServer(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{t: t, bin: binary(t), dir: t.TempDir(), opts: opts}
	if opts.TLS {
		s.makeCerts()
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			if b, err := os.ReadFile(filepath.Join(s.dir, "redis.log")); err == nil {
				t.Logf("redistest: redis-server log:\n%s", tail(b, 30))
			}
		}
	})
	// A free port can be taken by someone else between the probe and the
	// server's bind: try a few.
	var err error
	for range 5 {
		if s.port, err = freePort(); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		if err = s.start(); err == nil {
			return s
		}
	}
	t.Fatalf("redistest: %v", err)
	return nil
}

func binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvServer); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("redistest: %s=%s: %v", EnvServer, p, err)
		}
		return p
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skipf("redistest: no redis-server on PATH and %s is unset (scripts/test.sh installs one)", EnvServer)
	}
	return p
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Addr is the server's host:port; it does not change across Restart.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is the connection URL of database 0, with the password when one is
// set: redis://[:password@]127.0.0.1:<port>/0, or rediss:// with TLS.
func (s *Server) URL() string {
	u := url.URL{Scheme: "redis", Host: s.Addr(), Path: "/0"}
	if s.opts.TLS {
		u.Scheme = "rediss"
	}
	if s.opts.Password != "" {
		u.User = url.UserPassword("", s.opts.Password)
	}
	return u.String()
}

// RootCAs holds the CA that issued a TLS server's certificate (nil
// without TLS).
func (s *Server) RootCAs() *x509.CertPool { return s.ca }

// Stop shuts the server down with SIGTERM and waits for it to exit
// (idempotent). A durable server has flushed every acknowledged write.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill kills the server with SIGKILL, as a crash would, and waits for it.
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

// Restart starts the server again on the same port and data directory
// (a no-op while it runs) and waits until it answers, its data loaded.
func (s *Server) Restart() {
	s.t.Helper()
	if s.cmd != nil {
		return
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart: %v", err)
	}
}

func (s *Server) args() []string {
	a := []string{
		"--bind", "127.0.0.1", "--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"),
		"--daemonize", "no", "--save", "", "--databases", "16",
	}
	if s.opts.TLS {
		a = append(a, "--port", "0", "--tls-port", strconv.Itoa(s.port),
			"--tls-cert-file", filepath.Join(s.dir, "server.pem"),
			"--tls-key-file", filepath.Join(s.dir, "server.key"),
			"--tls-ca-cert-file", filepath.Join(s.dir, "ca.pem"),
			"--tls-auth-clients", "no")
	} else {
		a = append(a, "--port", strconv.Itoa(s.port))
	}
	if s.opts.Durable {
		a = append(a, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		a = append(a, "--appendonly", "no")
	}
	if s.opts.Password != "" {
		a = append(a, "--requirepass", s.opts.Password)
	}
	return a
}

// start runs the process and polls it with PING until it answers (10 s
// at most), or reports why it exited.
func (s *Server) start() error {
	cmd := exec.Command(s.bin, s.args()...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var err error
	for {
		if err = s.ping(); err == nil {
			return nil
		}
		select {
		case <-done:
			s.cmd = nil
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			return fmt.Errorf("redis-server on port %d exited: %s%s", s.port, tail(out.Bytes(), 10), tail(log, 10))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			s.signal(syscall.SIGKILL)
			return fmt.Errorf("redis-server on port %d did not answer within 10 s: %v", s.port, err)
		}
	}
}

// ping sends PING (after AUTH when a password is set) on a new connection
// and expects +PONG: a server still loading its data answers -LOADING.
func (s *Server) ping() error {
	d := net.Dialer{Timeout: time.Second}
	var conn net.Conn
	var err error
	if s.opts.TLS {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: &tls.Config{RootCAs: s.ca, MinVersion: tls.VersionTLS12}}).Dial("tcp", s.Addr())
	} else {
		conn, err = d.Dial("tcp", s.Addr())
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	cmd := "PING\r\n"
	if s.opts.Password != "" {
		cmd = fmt.Sprintf("AUTH %q\r\n", s.opts.Password) + cmd
	}
	if _, err := io.WriteString(conn, cmd); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		switch {
		case err != nil:
			return err
		case strings.HasPrefix(line, "+PONG"):
			return nil
		case strings.HasPrefix(line, "-"):
			return errors.New(strings.TrimSpace(line))
		}
	}
}

// makeCerts writes ca.pem, server.pem and server.key for 127.0.0.1 into
// the server's directory (testcerts.Loopback).
func (s *Server) makeCerts() {
	s.t.Helper()
	ca, err := testcerts.Loopback(s.dir, "redistest")
	if err != nil {
		s.t.Fatalf("redistest: making TLS certificates: %v", err)
	}
	s.ca = ca
}

// tail is the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
