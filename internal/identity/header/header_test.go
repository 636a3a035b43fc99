package header

import (
	"errors"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/rcsso/rcsso/internal/identity"
)

func TestIdentify(t *testing.T) {
	s := New(Config{UserHeader: "X-Forwarded-User", EmailHeader: "X-Forwarded-Email", NameHeader: "X-Forwarded-Name",
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

func FuzzIdentify(f *testing.F) {
	f.Add("alice", "alice@example.com", "Alice", "admins, users")
	f.Add("", "", "", "")
	f.Add("a\x00b", "not-an-email", "\xff", ",,,")
	s := New(Config{UserHeader: "X-User", EmailHeader: "X-Email", NameHeader: "X-Name", GroupsHeader: "X-Groups",
		RoleMap: map[string]string{"admins": "admin"}, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	f.Fuzz(func(t *testing.T, user, email, name, groups string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = "127.0.0.1:1"
		for k, v := range map[string]string{"X-User": user, "X-Email": email, "X-Name": name, "X-Groups": groups} {
			r.Header[k] = []string{v}
		}
		id, err := s.Identify(r)
		if err != nil {
			if !errors.Is(err, identity.ErrNotLoggedIn) {
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
