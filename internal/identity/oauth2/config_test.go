package oauth2

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	xoauth2 "golang.org/x/oauth2"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/websession"
)

func decode(t *testing.T, raw map[string]any) (*Config, error) {
	t.Helper()
	b := config.Block{Path: "identity[1]", Raw: raw}
	c := new(Config)
	if err := b.Decode(c); err != nil {
		return nil, err
	}
	return c, c.Validate(b)
}

func TestConfigValidate(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := []map[string]any{
		{"preset": "github", "client_id": "c", "client_secret": "s"},
		{"preset": "discord", "client_id": "c", "client_secret_file": secret, "groups_url": "https://discord.com/api/v10/users/@me/guilds"},
		{"preset": "gitlab", "client_id": "c", "auth_url": "https://git.example.com/oauth/authorize", "token_url": "https://git.example.com/oauth/token",
			"userinfo_url": "https://git.example.com/api/v4/user", "scopes": "read_user,read_api", "claims": map[string]any{"roles": "rcsso:groups"}},
		{"client_id": "c", "auth_url": "https://f.test/a", "token_url": "https://f.test/t", "userinfo_url": "https://f.test/me?fields=id",
			"claims": map[string]any{"subject": "id"}, "token_auth": "header", "timeout": "5s"},
	}
	for i, raw := range good {
		c, err := decode(t, raw)
		if err != nil {
			t.Errorf("good[%d]: %v", i, err)
		}
		if i == 1 && c.ClientSecret != "s3cret" {
			t.Errorf("client_secret_file read as %q", c.ClientSecret)
		}
	}
	for _, tc := range []struct {
		raw  map[string]any
		want []string
	}{
		{map[string]any{"preset": "google", "client_id": "c"}, []string{"identity[1].preset: google is an OpenID Connect provider: use type oidc with issuer https://accounts.google.com"}},
		{map[string]any{"preset": "myspace", "client_id": "c"}, []string{"identity[1].preset: unknown preset \"myspace\": use discord, facebook, github, gitlab, x"}},
		{map[string]any{"client_id": "c"}, []string{"identity[1].auth_url: without a preset", "identity[1].token_url:", "identity[1].userinfo_url:", "identity[1].claims.subject: name the userinfo answer's stable user id"}},
		{map[string]any{"preset": "github"}, []string{"identity[1].client_id: register rcsso as an OAuth app", "<public_url>/auth/<name>/callback"}},
		{map[string]any{"preset": "github", "client_id": "c", "client_secret": "a", "client_secret_file": secret}, []string{"identity[1].client_secret: identity[1].client_secret and identity[1].client_secret_file are both set"}},
		{map[string]any{"preset": "github", "client_id": "c", "claims": map[string]any{"subject": "login"}}, []string{"identity[1].claims.subject: preset github takes the provider's user id (id)"}},
		{map[string]any{"preset": "github", "client_id": "c", "userinfo_url": "javascript:alert(1)"}, []string{"identity[1].userinfo_url: must be an absolute http(s) URL"}},
		{map[string]any{"preset": "github", "client_id": "c", "auth_url": "https://gh.test/a#frag"}, []string{"identity[1].auth_url: must not contain credentials or a fragment"}},
		{map[string]any{"preset": "github", "client_id": "c", "groups_field": "login"}, []string{"identity[1].groups_field: only means something with groups_url"}},
		{map[string]any{"preset": "x", "client_id": "c", "groups_url": "https://api.x.com/2/x"}, []string{"identity[1].groups_field: name the field"}},
		{map[string]any{"preset": "github", "client_id": "c", "groups_url": "https://api.github.com/user/orgs", "claims": map[string]any{"groups": "orgs"}}, []string{"identity[1].claims.groups: groups come from groups_url"}},
		{map[string]any{"preset": "github", "client_id": "c", "token_auth": "jwt"}, []string{"identity[1].token_auth: \"jwt\": use header"}},
		{map[string]any{"preset": "github", "client_id": "c", "timeout": "-1s"}, []string{"identity[1].timeout: must not be negative"}},
		{map[string]any{"preset": "github", "client_id": "c", "issuer": "https://x"}, []string{"identity[1].issuer: unknown key"}},
	} {
		_, err := decode(t, tc.raw)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%v: err = %v, want it to contain %q", tc.raw, err, w)
			}
		}
	}
}

// Open builds the source from the configuration: the redirect URI under
// public_url, the store for single-use states, the preset's defaults.
func TestConfigOpen(t *testing.T) {
	c, err := decode(t, map[string]any{"preset": "discord", "client_id": "c", "client_secret": "s", "token_auth": "params",
		"groups_url": "https://discord.com/api/v10/users/@me/guilds", "label": "Chat with your Discord account"})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := url.Parse("https://sso.example.com/")
	src, err := c.Open(context.Background(), identity.Deps{
		Name: "discord", Store: memory.New(), PublicURL: pub, SecureCookies: true,
		Sessions: websession.New(memory.New(), websession.Options{CookieName: "s", TTL: 1}),
		Key:      func(string) []byte { return testKey() }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*Source)
	if s.oauth.RedirectURL != "https://sso.example.com/auth/discord/callback" || s.oauth.Endpoint.AuthStyle != xoauth2.AuthStyleInParams ||
		s.cfg.GroupsField != "id" || s.cfg.Mapping.Groups != claimGroups || s.LoginLabel() != "Chat with your Discord account" ||
		s.cookiePath != "/auth/discord/" || !s.cfg.SecureCookies || s.cfg.UserinfoURL != "https://discord.com/api/v10/users/@me" {
		t.Fatalf("opened %+v", s.cfg)
	}
	if s.client.CheckRedirect(&http.Request{}, nil) != http.ErrUseLastResponse || s.client.Timeout != DefaultTimeout {
		t.Fatal("the client follows redirects or has no timeout")
	}
	if managed, _ := c.ManagesRoles(); managed {
		t.Fatal("roles managed without a roles claim")
	}
}
