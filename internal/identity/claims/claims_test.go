package claims

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/rcsso/rcsso/internal/identity"
)

// decode parses a JSON document the way the sources do (UseNumber) or the
// way go-oidc / encoding/json defaults do (float64).
func decode(t testing.TB, doc string, useNumber bool) map[string]any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(doc))
	if useNumber {
		d.UseNumber()
	}
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		t.Fatalf("bad test JSON %q: %v", doc, err)
	}
	return m
}

const keycloakToken = `{
  "exp": 1767225600, "iat": 1767225300, "jti": "4a1f6a1e-6e0e-4a55-9d4c-0c1b3f3e0a11",
  "iss": "https://sso.example.com/realms/acme", "aud": "account",
  "sub": "3f1c0d8e-2b7a-4c8e-9a51-6f3d2e1b0c9a", "typ": "Bearer", "azp": "rcsso",
  "realm_access": {"roles": ["offline_access", "uma_authorization", "chat-admin"]},
  "resource_access": {"rcsso": {"roles": ["moderator", "chat-admin"]}},
  "scope": "openid email profile", "email_verified": true,
  "name": "Alice Liddell", "preferred_username": "alice",
  "given_name": "Alice", "family_name": "Liddell", "email": "alice@example.com"
}`

const auth0Token = `{
  "https://example.com/roles": ["editor", "viewer"],
  "nickname": "bob", "name": "bob@example.com",
  "picture": "https://s.gravatar.com/avatar/0bc83cb571cd1c50ba6f3e8a78ef1346?s=480&r=pg",
  "updated_at": "2026-11-20T10:00:00.000Z", "email": "bob@example.com", "email_verified": false,
  "iss": "https://acme.eu.auth0.com/", "aud": "kP1zYx", "iat": 1767225300, "exp": 1767261300,
  "sub": "auth0|64f1c2d3e4b5a6978c0d1e2f", "sid": "x1Y2z3"
}`

const googleToken = `{
  "iss": "https://accounts.google.com", "azp": "1234.apps.googleusercontent.com",
  "aud": "1234.apps.googleusercontent.com", "sub": "110169484474386276334",
  "hd": "example.com", "email": "carol@example.com", "email_verified": true,
  "at_hash": "HK6E_P6Dh8Y93mRNtsDB1Q", "name": "Carol Danvers",
  "picture": "https://lh3.googleusercontent.com/a/ACg8ocJ=s96-c",
  "given_name": "Carol", "family_name": "Danvers", "iat": 1767225300, "exp": 1767228900
}`

// A whoami answer of a typical PHP/Rails site: numeric id, nested user.
const siteAnswer = `{"user": {"id": 4711, "login": "dave", "display": "Dave D.",
  "mail": "dave@example.org", "groups": "staff, chat-mods  admins", "avatar": "/img/dave.png"}}`

func TestMap(t *testing.T) {
	siteMapping := Mapping{
		Subject: "user.id", Username: "user.login", Name: "user.display",
		Email: "user.mail", Avatar: "user.avatar", Roles: "user.groups",
		RoleMap: map[string]string{"chat-mods": "moderator", "admins": "admin", "root": "admin"},
	}
	tests := []struct {
		name    string
		mapping Mapping
		doc     string
		want    identity.Identity
		wantErr error
	}{
		{
			name: "keycloak realm roles allow-list",
			mapping: Mapping{Roles: "realm_access.roles", RoleMap: map[string]string{
				"chat-admin": "admin", "not-present": "bot"}},
			doc: keycloakToken,
			want: identity.Identity{
				Subject: "kc:3f1c0d8e-2b7a-4c8e-9a51-6f3d2e1b0c9a", Source: "kc",
				Username: "alice", Name: "Alice Liddell", Email: "alice@example.com",
				EmailVerified: true, Roles: []string{"admin"},
			},
		},
		{
			name: "keycloak client roles, two website roles onto one RC role",
			mapping: Mapping{Roles: "resource_access.rcsso.roles", RoleMap: map[string]string{
				"moderator": "moderator", "chat-admin": "moderator"}},
			doc: keycloakToken,
			want: identity.Identity{
				Subject: "kc:3f1c0d8e-2b7a-4c8e-9a51-6f3d2e1b0c9a", Source: "kc",
				Username: "alice", Name: "Alice Liddell", Email: "alice@example.com",
				EmailVerified: true, Roles: []string{"moderator"},
			},
		},
		{
			name: "auth0 namespaced claim with dots is looked up literally",
			mapping: Mapping{Username: "nickname", Roles: "https://example.com/roles",
				RoleMap: map[string]string{"editor": "user"}},
			doc: auth0Token,
			want: identity.Identity{
				Subject: "kc:auth0|64f1c2d3e4b5a6978c0d1e2f", Source: "kc",
				Username: "bob", Name: "bob@example.com", Email: "bob@example.com",
				AvatarURL: "https://s.gravatar.com/avatar/0bc83cb571cd1c50ba6f3e8a78ef1346?s=480&r=pg",
				Roles:     []string{"user"},
			},
		},
		{
			name: "google: no preferred_username, username falls back to sub; roles unmanaged",
			doc:  googleToken,
			want: identity.Identity{
				Subject: "kc:110169484474386276334", Source: "kc",
				Username: "110169484474386276334", Name: "Carol Danvers", Email: "carol@example.com",
				EmailVerified: true, AvatarURL: "https://lh3.googleusercontent.com/a/ACg8ocJ=s96-c",
			},
		},
		{
			name:    "site answer: numeric nested id, comma/space role string, relative avatar dropped",
			mapping: siteMapping,
			doc:     siteAnswer,
			want: identity.Identity{
				Subject: "kc:4711", Source: "kc", Username: "dave", Name: "Dave D.",
				Email: "dave@example.org", Roles: []string{"moderator", "admin"},
			},
		},
		{
			name:    "roles claim configured but absent: managed, empty (not nil)",
			mapping: Mapping{Roles: "groups", RoleMap: map[string]string{"a": "admin"}},
			doc:     `{"sub":"u1"}`,
			want:    identity.Identity{Subject: "kc:u1", Source: "kc", Username: "u1", Roles: []string{}},
		},
		{
			name:    "roles claim of the wrong type gives no roles",
			mapping: Mapping{Roles: "groups", RoleMap: map[string]string{"a": "admin"}},
			doc:     `{"sub":"u1","groups":{"a":true}}`,
			want:    identity.Identity{Subject: "kc:u1", Source: "kc", Username: "u1", Roles: []string{}, Groups: []string{}},
		},
		{
			name:    "roles list with non-strings skips them",
			mapping: Mapping{Roles: "groups", RoleMap: map[string]string{"a": "admin", "b": "user"}},
			doc:     `{"sub":"u1","groups":["b", 1, null, "a", "zz"]}`,
			want:    identity.Identity{Subject: "kc:u1", Source: "kc", Username: "u1", Roles: []string{"user", "admin"}, Groups: []string{"b", "a", "zz"}},
		},
		{
			name:    "literal dotted key wins over the nested path",
			mapping: Mapping{Subject: "user.id"},
			doc:     `{"user.id":"literal","user":{"id":"nested"}}`,
			want:    identity.Identity{Subject: "kc:literal", Source: "kc", Username: "literal"},
		},
		{
			name: "subject is trimmed",
			doc:  `{"sub":"  alice  "}`,
			want: identity.Identity{Subject: "kc:alice", Source: "kc", Username: "alice"},
		},
		{
			name: "bad email and avatars are dropped, verified flag with them",
			doc:  `{"sub":"x","email":"not-an-email","email_verified":true,"picture":"javascript:alert(1)"}`,
			want: identity.Identity{Subject: "kc:x", Source: "kc", Username: "x"},
		},
		{
			name: "email with angle brackets dropped; protocol-relative avatar dropped",
			doc:  `{"sub":"x","email":"<a@b.c>","picture":"//evil.example/p.png"}`,
			want: identity.Identity{Subject: "kc:x", Source: "kc", Username: "x"},
		},
		{
			name: "non-http avatar schemes dropped",
			doc:  `{"sub":"x","picture":"data:image/png;base64,AAAA"}`,
			want: identity.Identity{Subject: "kc:x", Source: "kc", Username: "x"},
		},
		{
			name: "email_verified as string (Cognito style)",
			doc:  `{"sub":"x","email":"x@example.com","email_verified":"true"}`,
			want: identity.Identity{Subject: "kc:x", Source: "kc", Username: "x", Email: "x@example.com", EmailVerified: true},
		},
		{
			name:    "AssumeEmailVerified applies only when the claim is absent",
			mapping: Mapping{AssumeEmailVerified: true},
			doc:     `{"sub":"x","email":"x@example.com"}`,
			want:    identity.Identity{Subject: "kc:x", Source: "kc", Username: "x", Email: "x@example.com", EmailVerified: true},
		},
		{
			name:    "AssumeEmailVerified does not override an explicit false",
			mapping: Mapping{AssumeEmailVerified: true},
			doc:     `{"sub":"x","email":"x@example.com","email_verified":false}`,
			want:    identity.Identity{Subject: "kc:x", Source: "kc", Username: "x", Email: "x@example.com"},
		},
		{
			name: "control characters in optional claims drop them",
			doc:  `{"sub":"x","preferred_username":"ev\u0000il","name":"a\nb"}`,
			want: identity.Identity{Subject: "kc:x", Source: "kc", Username: "x"},
		},
		{
			name: "numeric subject",
			doc:  `{"sub": 42}`,
			want: identity.Identity{Subject: "kc:42", Source: "kc", Username: "42"},
		},
		{
			name: "numeric subject written with an exponent is canonical",
			doc:  `{"sub": 4.2e1}`,
			want: identity.Identity{Subject: "kc:42", Source: "kc", Username: "42"},
		},
		{name: "missing subject", doc: `{"email":"a@example.com"}`, wantErr: ErrMissingSubject},
		{name: "null subject", doc: `{"sub":null}`, wantErr: ErrMissingSubject},
		{name: "empty subject", doc: `{"sub":"   "}`, wantErr: ErrMissingSubject},
		{name: "boolean subject", doc: `{"sub":true}`, wantErr: ErrMissingSubject},
		{name: "object subject", doc: `{"sub":{"id":1}}`, wantErr: ErrMissingSubject},
		{name: "fractional subject", doc: `{"sub":1.5}`, wantErr: ErrMissingSubject},
		{name: "subject with control char", doc: `{"sub":"a\u0007b"}`, wantErr: ErrMissingSubject},
		{name: "subject too long", doc: `{"sub":"` + strings.Repeat("a", 256) + `"}`, wantErr: ErrMissingSubject},
		{name: "nested path through a non-object", mapping: Mapping{Subject: "user.id"}, doc: `{"user":"x"}`, wantErr: ErrMissingSubject},
		{name: "subject is never the e-mail by default", doc: `{"email":"e@example.com","preferred_username":"e"}`, wantErr: ErrMissingSubject},
	}
	for _, tc := range tests {
		for _, useNumber := range []bool{false, true} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := tc.mapping.Map("kc", decode(t, tc.doc, useNumber))
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("useNumber=%v: err = %v, want %v (identity %+v)", useNumber, err, tc.wantErr, got)
					}
					return
				}
				if err != nil {
					t.Fatalf("useNumber=%v: %v", useNumber, err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("useNumber=%v:\n got %#v\nwant %#v", useNumber, got, tc.want)
				}
			})
		}
	}
}

// TestMapLargeNumericSubject: a float64 cannot tell 2^53 from 2^53+1, so two
// different website users would share one chat account. Large ids must be
// refused as float64 and kept exactly as json.Number.
func TestMapLargeNumericSubject(t *testing.T) {
	var m Mapping
	a, errA := m.Map("s", decode(t, `{"sub": 9007199254740993}`, false))
	b, errB := m.Map("s", decode(t, `{"sub": 9007199254740992}`, false))
	if errA == nil && errB == nil && a.Subject == b.Subject {
		t.Fatalf("distinct ids collide on subject %q", a.Subject)
	}
	if errA == nil {
		t.Errorf("float64 beyond 2^53 accepted as %q", a.Subject)
	}
	if _, err := m.Map("s", map[string]any{"sub": 1e300}); err == nil {
		t.Error("1e300 accepted")
	}
	for doc, want := range map[string]string{
		`{"sub": 9007199254740993}`:          "s:9007199254740993",
		`{"sub": 123456789012345678901234}`:  "s:123456789012345678901234",
		`{"sub": -5}`:                        "s:-5",
		`{"sub": -0}`:                        "s:0",
		`{"sub": 1.0}`:                       "s:1",
		`{"sub": 9007199254740993.0}`:        "",
		`{"sub": 12345678901234567890123e0}`: "",
	} {
		got, err := m.Map("s", decode(t, doc, true))
		if want == "" {
			if err == nil {
				t.Errorf("%s: accepted as %q, want refused", doc, got.Subject)
			}
			continue
		}
		if err != nil || got.Subject != want {
			t.Errorf("%s: got %q, %v; want %q", doc, got.Subject, err, want)
		}
	}
}

func TestMapNilAndOddInputs(t *testing.T) {
	var m Mapping
	if _, err := m.Map("s", nil); !errors.Is(err, ErrMissingSubject) {
		t.Errorf("nil claims: %v", err)
	}
	// Go-typed values, as a source building claims by hand would pass.
	id, err := m.Map("s", map[string]any{"sub": int64(7), "groups": []string{"a"}})
	if err != nil || id.Subject != "s:7" {
		t.Errorf("int64 subject: %+v %v", id, err)
	}
	id, err = Mapping{Roles: "groups", RoleMap: map[string]string{"a": "admin"}}.Map("s", map[string]any{"sub": 7, "groups": []string{"a"}})
	if err != nil || id.Subject != "s:7" || !reflect.DeepEqual(id.Roles, []string{"admin"}) {
		t.Errorf("int subject / []string roles: %+v %v", id, err)
	}
}

// FuzzMap feeds arbitrary JSON and claim paths: Map never panics, and a
// result always carries "<source>:" and only sanitised optional values.
func FuzzMap(f *testing.F) {
	for _, doc := range []string{keycloakToken, auth0Token, googleToken, siteAnswer,
		`{"sub":1e400}`, `{"sub":-0}`, `{"sub":[1]}`, `{"a":{"b":{"c":"d"}}}`, `{"sub":"\u00ff\ud800"}`} {
		f.Add([]byte(doc), "sub", "realm_access.roles", false)
		f.Add([]byte(doc), "user.id", "user.groups", true)
	}
	f.Fuzz(func(t *testing.T, doc []byte, subject, roles string, useNumber bool) {
		d := json.NewDecoder(bytes.NewReader(doc))
		if useNumber {
			d.UseNumber()
		}
		var c map[string]any
		if d.Decode(&c) != nil {
			return
		}
		m := Mapping{Subject: subject, Roles: roles, Avatar: "user.avatar",
			RoleMap: map[string]string{"chat-admin": "admin", "editor": "user"}}
		id, err := m.Map("src", c)
		if err != nil {
			if !errors.Is(err, ErrMissingSubject) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		sub, ok := strings.CutPrefix(id.Subject, "src:")
		if !ok || sub == "" || len(sub) > maxSubject || !utf8.ValidString(sub) || !printable(sub) {
			t.Fatalf("bad subject %q", id.Subject)
		}
		if id.Source != "src" || id.Username == "" {
			t.Fatalf("bad identity %+v", id)
		}
		if id.Email != "" && !validEmail(id.Email) {
			t.Fatalf("bad email %q", id.Email)
		}
		if id.EmailVerified && id.Email == "" {
			t.Fatal("verified without an e-mail")
		}
		if a := strings.ToLower(id.AvatarURL); a != "" && !strings.HasPrefix(a, "http://") && !strings.HasPrefix(a, "https://") {
			t.Fatalf("bad avatar %q", id.AvatarURL)
		}
		for _, r := range id.Roles {
			if r != "admin" && r != "user" {
				t.Fatalf("role %q not from the allow-list", r)
			}
		}
		if (roles == "") != (id.Roles == nil) {
			t.Fatalf("roles %q managed=%v", roles, id.Roles != nil)
		}
	})
}

// Groups come from the groups claim (a list, or a comma/space separated
// string), deduplicated, bounded (256, each at most 512 printable bytes);
// an absent claim means "unknown" (nil), an empty one "none".
func TestGroups(t *testing.T) {
	m := Mapping{}
	id, err := m.Map("jwt", map[string]any{"sub": "1", "groups": []any{"staff", "chat-admins", "staff", 42, ""}})
	if err != nil || !slices.Equal(id.Groups, []string{"staff", "chat-admins"}) {
		t.Fatalf("list: %v %v", id.Groups, err)
	}
	id, _ = m.Map("jwt", map[string]any{"sub": "1", "groups": "staff, sales  ops"})
	if !slices.Equal(id.Groups, []string{"staff", "sales", "ops"}) {
		t.Fatalf("string: %v", id.Groups)
	}
	id, _ = m.Map("jwt", map[string]any{"sub": "1"})
	if id.Groups != nil {
		t.Fatalf("absent claim: %v, want nil", id.Groups)
	}
	id, _ = m.Map("jwt", map[string]any{"sub": "1", "groups": []any{}})
	if id.Groups == nil || len(id.Groups) != 0 {
		t.Fatalf("empty claim: %#v, want an empty list", id.Groups)
	}
	many := make([]any, 10_000)
	for i := range many {
		many[i] = fmt.Sprintf("g%d", i)
	}
	many[0] = strings.Repeat("x", 10_000)
	many[1] = "bad\x00group"
	id, _ = m.Map("jwt", map[string]any{"sub": "1", "groups": many})
	if len(id.Groups) != 256 || slices.Contains(id.Groups, many[0].(string)) || slices.Contains(id.Groups, "bad\x00group") {
		t.Fatalf("hostile groups: %d kept", len(id.Groups))
	}
	id, _ = Mapping{Groups: "memberOf"}.Map("saml", map[string]any{"sub": "1", "memberOf": []string{"cn=staff"}})
	if !slices.Equal(id.Groups, []string{"cn=staff"}) {
		t.Fatalf("renamed claim: %v", id.Groups)
	}
}
