package oauth2

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/identity/claims"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/websession"
)

var testNow = time.Unix(1_800_000_000, 0)

// fuzzSources are one source per preset plus one configured by hand.
func fuzzSources(tb testing.TB) map[string]*Source {
	out := map[string]*Source{}
	for name := range presets {
		out[name] = mustSource(tb, Options{Preset: name})
	}
	out["generic"] = mustSource(tb, Options{AuthURL: "https://p.test/a", TokenURL: "https://p.test/t", UserinfoURL: "https://p.test/me",
		Mapping: claims.Mapping{Subject: "user.id", Username: "user.login", Roles: "user.roles", RoleMap: map[string]string{"a": "admin"}}})
	return out
}

func mustSource(tb testing.TB, o Options) *Source {
	o.Name, o.ClientID, o.RedirectURL, o.StateKey = "p", "c", "https://rcsso.test/auth/p/callback", testKey()
	o.Sessions = websession.New(memory.New(), websession.Options{CookieName: "s", TTL: time.Hour})
	o.Once = memory.New()
	s, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// FuzzUserinfo: any userinfo answer maps, for every preset, to an identity
// of this source or to an error; never a panic. Members named rcsso:* in
// the answer never set the e-mail (GitHub's comes from /user/emails only;
// Facebook and X never have one), and Discord's avatar URL is always on
// Discord's CDN.
func FuzzUserinfo(f *testing.F) {
	for _, b := range []string{
		`{"id": 4242, "login": "octo", "name": "Octo", "avatar_url": "https://a.test/x.png"}`,
		`{"id": "80351110224678912", "username": "nelly", "avatar": "8342729096ea3675442027381ff50dfe", "email": "n@d.test", "verified": true}`,
		`{"id": 1, "username": "john", "email": "j@g.test", "confirmed_at": "2012-05-23T09:05:22Z"}`,
		`{"data": {"id": "2244994945", "username": "TwitterDev", "profile_image_url": "https://p.test/a.jpg"}}`,
		`{"id": "1", "rcsso:email": "boss@corp.test", "rcsso:email_verified": true, "rcsso:avatar": "javascript:x"}`,
		`{"user": {"id": 7, "login": "x", "roles": ["a", "b"]}}`,
		`{"id": 12345678901234567891}`, `{"id": 1e400}`, `{"id": 1.5}`, `{"id": true}`, `{"id": {"a": 1}}`, `{"id": "a\u0000b"}`,
		`null`, `[]`, `"x"`, `{"id": 1} x`, `<html>`, ``,
	} {
		f.Add([]byte(b))
	}
	srcs := fuzzSources(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		v, err := parseJSON(body)
		if err != nil {
			return
		}
		for name, s := range srcs {
			c, err := s.claimsFrom(copyJSON(v))
			if err != nil {
				if !errors.Is(err, errNotJSON) {
					t.Fatalf("%s: error %v does not wrap errNotJSON", name, err)
				}
				continue
			}
			id, err := s.cfg.Mapping.Map("p", c)
			if err != nil {
				if !errors.Is(err, claims.ErrMissingSubject) {
					t.Fatalf("%s: error %v", name, err)
				}
				continue
			}
			if !strings.HasPrefix(id.Subject, "p:") || len(id.Subject) == len("p:") || id.Source != "p" {
				t.Fatalf("%s: subject %q", name, id.Subject)
			}
			switch name {
			case "github", "facebook", "x":
				if id.Email != "" || id.EmailVerified {
					t.Fatalf("%s: e-mail %q (verified %v) from the userinfo answer", name, id.Email, id.EmailVerified)
				}
			case "discord":
				if id.AvatarURL != "" && (!strings.HasPrefix(id.AvatarURL, "https://cdn.discordapp.com/avatars/") || strings.Contains(id.AvatarURL, "..")) {
					t.Fatalf("discord avatar %q", id.AvatarURL)
				}
			}
		}
	})
}

// copyJSON deep-copies a decoded JSON value (claimsFrom changes it).
func copyJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = copyJSON(e)
		}
		return m
	case []any:
		l := make([]any, len(x))
		for i, e := range x {
			l[i] = copyJSON(e)
		}
		return l
	}
	return v
}

// FuzzGroups: a groups answer gives at most maxGroupItems names, all
// strings, or errNotJSON; the GitHub e-mail list gives an address only
// from a primary, verified entry.
func FuzzGroups(f *testing.F) {
	for _, b := range []string{
		`[{"login": "devs", "id": 1}, {"login": "ops"}]`, `["a", "b", 3, null]`, `[{"id": 123456789012345678901234}]`,
		`[{"organization": {"login": "o"}, "slug": "t"}]`, `{"groups": []}`, `[[], {}, {"login": {"x": 1}}]`,
		`[{"email": "a@b.test", "primary": true, "verified": true}]`, `[{"email": "a@b.test", "primary": true, "verified": "true"}]`,
	} {
		f.Add([]byte(b), "login")
	}
	f.Add([]byte(`[{"organization": {"login": "o"}}]`), "organization.login")
	f.Fuzz(func(t *testing.T, body []byte, field string) {
		v, err := parseJSON(body)
		if err != nil {
			return
		}
		names, err := groupNames(v, field)
		if err != nil {
			if !errors.Is(err, errNotJSON) {
				t.Fatalf("error %v", err)
			}
		} else if len(names) > maxGroupItems {
			t.Fatalf("%d groups", len(names))
		}
		for _, n := range names {
			if _, ok := n.(string); !ok {
				t.Fatalf("group %#v is not a string", n)
			}
		}
		if addr, ok := githubPrimaryEmail(v); ok {
			found := false
			for _, e := range v.([]any) {
				o, _ := e.(map[string]any)
				found = found || (o["email"] == addr && o["primary"] == true && o["verified"] == true)
			}
			if !found || addr == "" {
				t.Fatalf("address %q not from a primary verified entry", addr)
			}
		}
	})
}

func TestGroupNamesBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("[")
	for i := range 3 * maxGroupItems {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`{"login": "g` + strconv.Itoa(i) + `"}`)
	}
	b.WriteString("]")
	v, err := parseJSON([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	names, err := groupNames(v, "login")
	if err != nil || len(names) != maxGroupItems || names[0] != "g0" {
		t.Fatalf("%d names, %v", len(names), err)
	}
}
