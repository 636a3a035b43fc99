package header

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
)

func TestIdentify(t *testing.T) {
	s := New(Options{UserHeader: "X-Forwarded-User", EmailHeader: "X-Forwarded-Email", NameHeader: "X-Forwarded-Name",
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, EmailVerified: true})
	cases := []struct {
		name, remote, user, email string
		wantErr                   bool
	}{
		{"trusted", "127.0.0.1:5000", "alice", "alice@example.com", false},
		{"untrusted peer", "10.1.2.3:5000", "alice", "", true},
		{"no header", "127.0.0.1:5000", "", "", true},
		{"control chars", "127.0.0.1:5000", "al\x01ice", "", true},
		{"too long", "127.0.0.1:5000", strings.Repeat("a", 300), "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.remote
			if c.user != "" {
				r.Header.Set("X-Forwarded-User", c.user)
			}
			if c.email != "" {
				r.Header.Set("X-Forwarded-Email", c.email)
			}
			id, err := s.Identify(r)
			if c.wantErr {
				if !errors.Is(err, identity.ErrNotLoggedIn) {
					t.Fatalf("want ErrNotLoggedIn, got %v (%+v)", err, id)
				}
				return
			}
			if err != nil || id.Subject != "header:alice" || id.Email != c.email || !id.EmailVerified {
				t.Fatalf("got %+v, %v", id, err)
			}
		})
	}
}

// A trusted proxy that adds its identity header to the one the client sent
// (instead of replacing it) must not let the client choose who it is: every
// identity header appearing twice, and an e-mail header holding a
// comma-joined list, is ErrMalformedRequest (400), never an identity and
// never "not logged in" (which would let the next source in the chain try).
func TestDuplicateIdentityHeaders(t *testing.T) {
	s := New(Options{UserHeader: "X-Forwarded-User", EmailHeader: "X-Forwarded-Email", NameHeader: "X-Forwarded-Name", GroupsHeader: "X-Forwarded-Groups",
		RoleMap: map[string]string{"admins": "admin"}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	base := map[string][]string{"X-Forwarded-User": {"alice"}, "X-Forwarded-Email": {"alice@example.com"}, "X-Forwarded-Name": {"Alice"}, "X-Forwarded-Groups": {"users"}}
	cases := []struct {
		name, remote string
		set          map[string][]string
		want         error // nil: logged in as alice
	}{
		{"one of each", "127.0.0.1:1", nil, nil},
		{"user twice, attacker first", "127.0.0.1:1", map[string][]string{"X-Forwarded-User": {"mallory", "alice"}}, identity.ErrMalformedRequest},
		{"user twice, same value", "127.0.0.1:1", map[string][]string{"X-Forwarded-User": {"alice", "alice"}}, identity.ErrMalformedRequest},
		{"user twice, first empty", "127.0.0.1:1", map[string][]string{"X-Forwarded-User": {"", "alice"}}, identity.ErrMalformedRequest},
		{"user twice, second empty", "127.0.0.1:1", map[string][]string{"X-Forwarded-User": {"alice", ""}}, identity.ErrMalformedRequest},
		{"email twice", "127.0.0.1:1", map[string][]string{"X-Forwarded-Email": {"mallory@evil.test", "alice@example.com"}}, identity.ErrMalformedRequest},
		{"name twice", "127.0.0.1:1", map[string][]string{"X-Forwarded-Name": {"Mallory", "Alice"}}, identity.ErrMalformedRequest},
		{"groups twice", "127.0.0.1:1", map[string][]string{"X-Forwarded-Groups": {"admins", "users"}}, identity.ErrMalformedRequest},
		{"email comma-joined", "127.0.0.1:1", map[string][]string{"X-Forwarded-Email": {"mallory@evil.test,alice@example.com"}}, identity.ErrMalformedRequest},
		{"email comma-joined with space", "127.0.0.1:1", map[string][]string{"X-Forwarded-Email": {"mallory@evil.test, alice@example.com"}}, identity.ErrMalformedRequest},
		{"user with commas (certificate name)", "127.0.0.1:1", map[string][]string{"X-Forwarded-User": {"CN=alice,OU=Staff"}}, nil},
		{"name with a comma", "127.0.0.1:1", map[string][]string{"X-Forwarded-Name": {"Doe, Alice"}}, nil},
		{"untrusted peer, user twice", "10.0.0.1:1", map[string][]string{"X-Forwarded-User": {"mallory", "alice"}}, identity.ErrNotLoggedIn},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.remote
			for k, v := range base {
				r.Header[k] = v
			}
			for k, v := range c.set {
				r.Header[k] = v
			}
			id, err := s.Identify(r)
			if c.want == nil {
				if err != nil || !strings.HasPrefix(id.Subject, "header:") {
					t.Fatalf("got %+v, %v; want logged in", id, err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %+v, %v; want %v", id, err, c.want)
			}
			if c.want == identity.ErrMalformedRequest && errors.Is(err, identity.ErrNotLoggedIn) {
				t.Fatalf("%v is also 'not logged in': the chain would try the next source", err)
			}
		})
	}
	// The chain stops at the malformed request: a website session cookie
	// of another source does not take over.
	chain := identity.Chain{s, loggedIn{}}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:1"
	r.Header["X-Forwarded-User"] = []string{"mallory", "alice"}
	if id, err := chain.Identify(r); !errors.Is(err, identity.ErrMalformedRequest) {
		t.Fatalf("chain: %+v, %v", id, err)
	}
}

type loggedIn struct{}

func (loggedIn) Name() string { return "local" }
func (loggedIn) Identify(*http.Request) (identity.Identity, error) {
	return identity.Identity{Subject: "local:bob", Source: "local", Username: "bob"}, nil
}

// FuzzIdentify feeds arbitrary header values; dup's low four bits repeat
// the user, e-mail, name and groups header (the second copy holds the
// user value).
func FuzzIdentify(f *testing.F) {
	f.Add("alice", "alice@example.com", "Alice", "admins, users", uint8(0))
	f.Add("", "", "", "", uint8(0))
	f.Add("a\x00b", "not-an-email", "\xff", ",,,", uint8(0))
	f.Add("alice", "alice@example.com", "Alice", "admins", uint8(1))
	f.Add("alice", "alice@example.com", "Alice", "admins", uint8(2))
	f.Add("alice", "alice@example.com", "Alice", "admins", uint8(4))
	f.Add("alice", "alice@example.com", "Alice", "admins", uint8(8))
	f.Add("alice", "a@b.c,alice@example.com", "Alice", "admins", uint8(0))
	s := New(Options{UserHeader: "X-User", EmailHeader: "X-Email", NameHeader: "X-Name", GroupsHeader: "X-Groups",
		RoleMap: map[string]string{"admins": "admin"}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	f.Fuzz(func(t *testing.T, user, email, name, groups string, dup uint8) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "127.0.0.1:1"
		duplicated := false
		for i, kv := range [][2]string{{"X-User", user}, {"X-Email", email}, {"X-Name", name}, {"X-Groups", groups}} {
			r.Header[kv[0]] = []string{kv[1]}
			if dup&(1<<i) != 0 {
				r.Header[kv[0]] = append(r.Header[kv[0]], user)
				duplicated = true
			}
		}
		id, err := s.Identify(r)
		if duplicated {
			if !errors.Is(err, identity.ErrMalformedRequest) || errors.Is(err, identity.ErrNotLoggedIn) {
				t.Fatalf("duplicated identity header: got %+v, %v; want only ErrMalformedRequest", id, err)
			}
			return
		}
		if err != nil {
			switch {
			case errors.Is(err, identity.ErrMalformedRequest):
				if !strings.Contains(email, ",") {
					t.Fatalf("malformed without a duplicate or a comma-joined e-mail: %v", err)
				}
			case !errors.Is(err, identity.ErrNotLoggedIn):
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !strings.HasPrefix(id.Subject, "header:") || id.Subject == "header:" {
			t.Fatalf("subject %q", id.Subject)
		}
		for _, r := range id.Roles {
			if r != "admin" {
				t.Fatalf("role %q passed the allow-list", r)
			}
		}
	})
}

// trusted_proxies: [0.0.0.0/0] is accepted (a proxy pool may need broad
// ranges) but warned about at start-up, naming the key.
func TestBroadTrustedProxiesWarn(t *testing.T) {
	for _, c := range []struct {
		prefixes []string
		warn     bool
	}{
		{[]string{"0.0.0.0/0"}, true},
		{[]string{"::/0"}, true},
		{[]string{"10.0.0.0/8"}, false},
		{[]string{"127.0.0.1"}, false},
		{[]string{"10.0.0.0/8", "0.0.0.0/1"}, true},
	} {
		var logs bytes.Buffer
		cfg := &Config{UserHeader: "X-Forwarded-User", TrustedProxies: c.prefixes}
		if err := cfg.Validate(config.Block{Path: "identity[0]"}); err != nil {
			t.Fatal(err)
		}
		if _, err := cfg.Open(context.Background(), identity.Deps{Name: "header", Logger: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
			t.Fatal(err)
		}
		warned := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "identity[0].trusted_proxies")
		if warned != c.warn {
			t.Errorf("%v: warned %v, want %v: %s", c.prefixes, warned, c.warn, logs.String())
		}
	}
}
