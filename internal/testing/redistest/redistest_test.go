package redistest

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

func connect(t *testing.T, rawURL string, tlsConf *tls.Config) *goredis.Client {
	t.Helper()
	opt, err := goredis.ParseURL(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	opt.MaxRetries = -1
	if tlsConf != nil {
		opt.TLSConfig = tlsConf
	}
	c := goredis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// until polls f every 10 ms until it returns nil or 10 s pass.
func until(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

func TestStart(t *testing.T) {
	u := Start(t)
	if !strings.HasPrefix(u, "redis://127.0.0.1:") || !strings.HasSuffix(u, "/0") {
		t.Fatalf("URL = %q", u)
	}
	c := connect(t, u, nil)
	ctx := t.Context()
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("DBSIZE = %d, %v; want an empty database", n, err)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
		t.Fatalf("GET = %q, %v", v, err)
	}
}

func TestServersAreSeparate(t *testing.T) {
	a, b := Start(t), Start(t)
	if a == b {
		t.Fatalf("two Start calls returned the same URL %q", a)
	}
	ctx := t.Context()
	if err := connect(t, a, nil).Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := connect(t, b, nil).DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("the other server holds %d keys (%v), want 0", n, err)
	}
}

// A durable server keeps every acknowledged write across a graceful stop
// and a crash; a plain one starts empty again.
func TestRestart(t *testing.T) {
	for _, c := range []struct {
		name    string
		durable bool
		stop    func(*Server)
	}{
		{"durable-stop", true, (*Server).Stop},
		{"durable-kill", true, (*Server).Kill},
		{"plain-stop", false, (*Server).Stop},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := StartServer(t, Options{Durable: c.durable})
			cl := connect(t, srv.URL(), nil)
			ctx := t.Context()
			if err := cl.Set(ctx, "kept", "1", 0).Err(); err != nil {
				t.Fatal(err)
			}
			addr := srv.Addr()
			c.stop(srv)
			qctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			err := cl.Get(qctx, "kept").Err()
			cancel()
			if err == nil || errors.Is(err, goredis.Nil) {
				t.Fatalf("GET while stopped: err = %v, want a connection error", err)
			}
			srv.Restart()
			if srv.Addr() != addr {
				t.Fatalf("address changed across Restart: %s, then %s", addr, srv.Addr())
			}
			var v string
			until(t, "GET after restart", func() error {
				v, err = cl.Get(ctx, "kept").Result()
				if errors.Is(err, goredis.Nil) {
					return nil
				}
				return err
			})
			if c.durable && v != "1" {
				t.Fatalf("an acknowledged write was lost: GET = %q", v)
			}
			if !c.durable && v != "" {
				t.Fatalf("a plain server kept %q across a restart", v)
			}
		})
	}
}

func TestPassword(t *testing.T) {
	srv := StartServer(t, Options{Password: "s3cr3t/pw"})
	ctx := t.Context()
	if err := connect(t, strings.Replace(srv.URL(), ":s3cr3t%2Fpw@", "", 1), nil).Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Fatalf("PING without the password: %v, want NOAUTH", err)
	}
	if err := connect(t, srv.URL(), nil).Ping(ctx).Err(); err != nil {
		t.Fatalf("PING with the URL's password: %v", err)
	}
}

func TestTLS(t *testing.T) {
	srv := StartServer(t, Options{TLS: true})
	if !strings.HasPrefix(srv.URL(), "rediss://") {
		t.Fatalf("URL = %q, want rediss://", srv.URL())
	}
	ctx := t.Context()
	c := connect(t, srv.URL(), &tls.Config{RootCAs: srv.RootCAs(), MinVersion: tls.VersionTLS12})
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING over TLS: %v", err)
	}
	// The system roots do not trust the test CA.
	if err := connect(t, srv.URL(), nil).Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("PING trusting the system roots: %v, want a certificate error", err)
	}
}
