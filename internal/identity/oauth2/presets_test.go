package oauth2

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/websession"
)

// Each preset against the fake provider answering as that provider's API
// documentation shows: the identity rcsso keeps, how the client
// authenticates, and what the authorization request asks for.
func TestPresets(t *testing.T) {
	for _, tc := range []struct {
		preset string
		path   string // userinfo path at the fake provider (a query is kept)
		answer any
		want   identity.Identity
		basic  bool   // client authenticates with HTTP Basic
		scope  string // scope in the authorization request
		param  [2]string
	}{
		{
			preset: "discord", path: "/api/v10/users/@me",
			answer: map[string]any{"id": "80351110224678912", "username": "nelly", "discriminator": "0", "global_name": "Nelly",
				"avatar": "8342729096ea3675442027381ff50dfe", "verified": true, "email": "nelly@discord.test", "flags": 64},
			want: identity.Identity{Subject: "gh:80351110224678912", Source: "gh", Username: "nelly", Name: "Nelly",
				Email: "nelly@discord.test", EmailVerified: true, AvatarURL: "https://cdn.discordapp.com/avatars/80351110224678912/8342729096ea3675442027381ff50dfe.png"},
			basic: true, scope: "identify email", param: [2]string{"prompt", "none"},
		},
		{
			preset: "discord", path: "/api/v10/users/@me",
			answer: map[string]any{"id": "80351110224678912", "username": "nelly", "global_name": nil,
				"avatar": "../../evil", "verified": false, "email": "nelly@discord.test"},
			want:  identity.Identity{Subject: "gh:80351110224678912", Source: "gh", Username: "nelly"},
			basic: true, scope: "identify email",
		},
		{
			preset: "gitlab", path: "/api/v4/user",
			answer: map[string]any{"id": 1, "username": "john_smith", "name": "John Smith", "state": "active",
				"avatar_url": "https://gitlab.test/uploads/user/avatar/1/index.jpg", "email": "john@example.test",
				"confirmed_at": "2012-05-23T09:05:22Z"},
			want: identity.Identity{Subject: "gh:1", Source: "gh", Username: "john_smith", Name: "John Smith",
				Email: "john@example.test", EmailVerified: true, AvatarURL: "https://gitlab.test/uploads/user/avatar/1/index.jpg"},
			scope: "read_user",
		},
		{
			preset: "gitlab", path: "/api/v4/user",
			answer: map[string]any{"id": 2, "username": "new", "name": "New", "email": "new@example.test", "confirmed_at": nil},
			want:   identity.Identity{Subject: "gh:2", Source: "gh", Username: "new", Name: "New"},
			scope:  "read_user",
		},
		{
			preset: "facebook", path: "/me?fields=id,name,email",
			answer: map[string]any{"id": "10158291038746211", "name": "Jane Doe", "email": "jane@fb.test"},
			want:   identity.Identity{Subject: "gh:10158291038746211", Source: "gh", Username: "Jane Doe", Name: "Jane Doe"},
			scope:  "public_profile email",
		},
		{
			preset: "x", path: "/2/users/me?user.fields=id,name,username,profile_image_url",
			answer: map[string]any{"data": map[string]any{"id": "2244994945", "name": "X Dev", "username": "TwitterDev",
				"profile_image_url": "https://pbs.twimg.test/profile_images/1/a_normal.jpg"}},
			want: identity.Identity{Subject: "gh:2244994945", Source: "gh", Username: "TwitterDev", Name: "X Dev",
				AvatarURL: "https://pbs.twimg.test/profile_images/1/a_normal.jpg"},
			basic: true, scope: "users.read tweet.read",
		},
	} {
		t.Run(tc.preset, func(t *testing.T) {
			rg := newRig(t, func(o *Options) {
				o.Preset = tc.preset
				o.UserinfoURL = strings.TrimSuffix(o.UserinfoURL, "/user") + tc.path
			})
			rg.p.SetJSON(strings.SplitN(tc.path, "?", 2)[0], tc.answer)
			if resp, body := rg.login(); resp.StatusCode != http.StatusOK {
				t.Fatalf("login: %d %s", resp.StatusCode, body)
			}
			if id := rg.whoami(); id == nil || !reflect.DeepEqual(*id, tc.want) {
				t.Fatalf("Identify = %+v\nwant       %+v", id, tc.want)
			}
			tf, basic := rg.p.LastTokenRequest()
			if basic != tc.basic || (basic && tf.Get("client_secret") != "") {
				t.Errorf("client authentication: basic=%v, body %v", basic, tf)
			}
			az := rg.p.LastAuthorize()
			if az.Get("scope") != tc.scope || az.Get("code_challenge_method") != "S256" {
				t.Errorf("authorization request %v", az)
			}
			if tc.param[0] != "" && az.Get(tc.param[0]) != tc.param[1] {
				t.Errorf("authorization request lacks %s=%s: %v", tc.param[0], tc.param[1], az)
			}
			if rg.src.LoginLabel() != "Log in with "+presets[tc.preset].title {
				t.Errorf("label %q", rg.src.LoginLabel())
			}
		})
	}
}

// A provider configured by hand: nested claims, a public client (PKCE
// only, client_id in the body), the OIDC-style email_verified claim.
func TestGenericProvider(t *testing.T) {
	rg := newRig(t, func(o *Options) {
		o.Preset = ""
		o.ClientSecret = ""
		o.UserinfoURL += "/profile"
		o.Label = "Log in with Example Forum"
		o.Mapping.Subject = "user.uid"
		o.Mapping.Username = "user.handle"
		o.Mapping.Email = "user.mail"
		o.Mapping.EmailVerified = "user.mail_ok"
		o.Mapping.Groups = "user.teams"
	})
	rg.p.ClientSecret = ""
	rg.p.SetJSON("/user/profile", map[string]any{"user": map[string]any{"uid": "f-17", "handle": "ann", "name": "Ann",
		"mail": "ann@forum.test", "mail_ok": true, "teams": []any{"mods", "mods", "staff"}}})
	if resp, body := rg.login(); resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %s", resp.StatusCode, body)
	}
	want := identity.Identity{Subject: "gh:f-17", Source: "gh", Username: "ann", Email: "ann@forum.test", EmailVerified: true}
	id := rg.whoami()
	if id != nil {
		id.Groups = nil // kept by sessions only where the store keeps them; checked below
	}
	if id == nil || !reflect.DeepEqual(*id, want) {
		t.Fatalf("Identify = %+v, want %+v", id, want)
	}
	tf, basic := rg.p.LastTokenRequest()
	if basic || tf.Get("client_id") != rg.p.ClientID || tf.Get("code_verifier") == "" {
		t.Fatalf("public client token request: basic=%v %v", basic, tf)
	}
	if rg.src.LoginLabel() != "Log in with Example Forum" {
		t.Fatalf("label %q", rg.src.LoginLabel())
	}
	got, err := rg.identityFromProvider()
	if err != nil || !reflect.DeepEqual(got.Groups, []string{"mods", "staff"}) {
		t.Fatalf("groups %v, %v", got.Groups, err)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Options)
		want string
	}{
		{func(o *Options) { o.Name = "bad name" }, "name must be"},
		{func(o *Options) { o.Preset = "google" }, "unknown preset"},
		{func(o *Options) { o.Mapping.Subject = "login" }, "leave claims.subject out"},
		{func(o *Options) { o.Preset = ""; o.Mapping.Subject = "" }, "claims.subject"},
		{func(o *Options) { o.ClientID = "" }, "client id"},
		{func(o *Options) { o.Once = nil }, "single-use"},
		{func(o *Options) { o.Sessions = nil }, "session manager"},
		{func(o *Options) { o.TokenURL = "ftp://x" }, "token URL"},
		{func(o *Options) { o.UserinfoURL = "https://u:p@api.test/user" }, "credentials"},
		{func(o *Options) { o.UserinfoURL = "https://api.test/me" }, "must end in /user"},
		{func(o *Options) { o.Preset = ""; o.Mapping.Subject = "id"; o.GroupsURL = "https://api.test/g" }, "groups_field"},
		{func(o *Options) { o.RedirectURL = "https://rcsso.test/auth/gh/" }, "/callback"},
		{func(o *Options) { o.StateKey = []byte("short") }, "32"},
	} {
		o := Options{Name: "gh", Preset: "github", ClientID: "c", RedirectURL: "https://rcsso.test/auth/gh/callback",
			Sessions: websession.New(memory.New(), websession.Options{CookieName: "s", TTL: time.Hour}), Once: memory.New(), StateKey: testKey()}
		if _, err := New(o); err != nil {
			t.Fatalf("the base options fail: %v", err)
		}
		tc.mod(&o)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want it to mention %q", err, tc.want)
		}
	}
}
