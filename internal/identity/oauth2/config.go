package oauth2

import (
	"context"
	"errors"
	"strings"
	"time"

	xoauth2 "golang.org/x/oauth2"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
)

// Config is identity source type oauth2's configuration (an entry of the
// identity list): rcsso as an OAuth 2.0 client of a provider that is not
// an OpenID Provider. Register the redirect URI
// <public_url>/auth/<name>/callback at the provider.
type Config struct {
	// Preset is github, gitlab, discord, facebook or x: endpoints, scopes
	// and claims as that provider documents them (presets.go). Empty:
	// auth_url, token_url, userinfo_url and claims.subject are required.
	Preset      string `koanf:"preset"`
	AuthURL     string `koanf:"auth_url"`
	TokenURL    string `koanf:"token_url"`
	UserinfoURL string `koanf:"userinfo_url"`
	// GroupsURL answers a JSON array of the person's groups; GroupsField
	// names a group in each entry (default the preset's).
	GroupsURL        string   `koanf:"groups_url"`
	GroupsField      string   `koanf:"groups_field"`
	ClientID         string   `koanf:"client_id"`
	ClientSecret     string   `koanf:"client_secret"`
	ClientSecretFile string   `koanf:"client_secret_file"`
	Scopes           []string `koanf:"scopes"`
	Label            string   `koanf:"label"`
	// TokenAuth is how rcsso authenticates at the token endpoint: header
	// (HTTP Basic) or params (in the body); default the preset's, else
	// tried in that order.
	TokenAuth string `koanf:"token_auth"`
	// Timeout bounds each call to the provider (default 10s).
	Timeout time.Duration  `koanf:"timeout"`
	Claims  claims.Mapping `koanf:"claims"`
}

// Validate implements identity.Config; it reads client_secret_file.
func (c *Config) Validate(b config.Block) error {
	var errs []error
	p, known := presets[c.Preset]
	switch {
	case c.Preset == "":
	case oidcProviders[strings.ToLower(c.Preset)] != "":
		errs = append(errs, b.Errorf("preset", "%s is an OpenID Connect provider: use type oidc with issuer %s", c.Preset, oidcProviders[strings.ToLower(c.Preset)]))
	case !known:
		errs = append(errs, b.Errorf("preset", "unknown preset %q: use %s, or leave it out and give auth_url, token_url, userinfo_url and claims.subject", c.Preset, presetNames()))
	}
	for _, u := range []struct{ key, value, what string }{
		{"auth_url", c.AuthURL, "authorization endpoint"},
		{"token_url", c.TokenURL, "token endpoint"},
		{"userinfo_url", c.UserinfoURL, "API URL that answers the logged-in user as a JSON object"},
		{"groups_url", c.GroupsURL, ""},
	} {
		switch {
		case u.value != "":
			if err := CheckURL(u.value); err != nil {
				errs = append(errs, b.Errorf(u.key, "%v", err))
			}
		case c.Preset == "" && u.what != "":
			errs = append(errs, b.Errorf(u.key, "without a preset (%s) give the provider's %s", presetNames(), u.what))
		}
	}
	if c.ClientID == "" {
		errs = append(errs, b.Errorf("client_id", "register rcsso as an OAuth app at the provider with the redirect URI <public_url>/auth/<name>/callback and give its client id"))
	}
	if err := b.ReadSecret("client_secret", &c.ClientSecret, c.ClientSecretFile); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.Preset == "" && c.Claims.Subject == "":
		errs = append(errs, b.Errorf("claims.subject", "name the userinfo answer's stable user id (e.g. id), never the e-mail or login name, which people can change"))
	case known && c.Claims.Subject != "" && c.Claims.Subject != p.mapping.Subject:
		errs = append(errs, b.Errorf("claims.subject", "preset %s takes the provider's user id (%s); leave claims.subject out", c.Preset, p.mapping.Subject))
	}
	if c.GroupsURL != "" && c.Claims.Groups != "" {
		errs = append(errs, b.Errorf("claims.groups", "groups come from groups_url; leave claims.groups out"))
	}
	if c.GroupsField != "" && c.GroupsURL == "" {
		errs = append(errs, b.Errorf("groups_field", "only means something with groups_url"))
	}
	if c.GroupsURL != "" && c.GroupsField == "" && (!known || p.groupsField == "") {
		errs = append(errs, b.Errorf("groups_field", "name the field of each groups_url entry that names the group (e.g. login, full_path, name)"))
	}
	if _, ok := tokenAuth[c.TokenAuth]; !ok {
		errs = append(errs, b.Errorf("token_auth", "%q: use header (HTTP Basic) or params (client_secret in the body)", c.TokenAuth))
	}
	if c.Timeout < 0 {
		errs = append(errs, b.Errorf("timeout", "must not be negative"))
	}
	return errors.Join(errs...)
}

var tokenAuth = map[string]xoauth2.AuthStyle{
	"":       xoauth2.AuthStyleAutoDetect,
	"header": xoauth2.AuthStyleInHeader,
	"params": xoauth2.AuthStyleInParams,
}

// ManagesRoles implements identity.RoleSource.
func (c *Config) ManagesRoles() (managed, admin bool) { return c.Claims.ManagesRoles() }

// Open implements identity.Config. It does not contact the provider.
func (c *Config) Open(_ context.Context, d identity.Deps) (identity.Source, error) {
	return New(Options{
		Name:          d.Name,
		Preset:        c.Preset,
		Label:         c.Label,
		AuthURL:       c.AuthURL,
		TokenURL:      c.TokenURL,
		UserinfoURL:   c.UserinfoURL,
		GroupsURL:     c.GroupsURL,
		GroupsField:   c.GroupsField,
		ClientID:      c.ClientID,
		ClientSecret:  c.ClientSecret,
		Scopes:        c.Scopes,
		AuthStyle:     tokenAuth[c.TokenAuth],
		RedirectURL:   strings.TrimRight(d.PublicURL.String(), "/") + "/auth/" + d.Name + "/callback",
		Mapping:       c.Claims,
		Sessions:      d.Sessions,
		Once:          d.Store,
		StateKey:      d.Key("rcsso oauth2 state " + d.Name),
		SecureCookies: d.SecureCookies,
		SafeReturnTo:  d.SafeReturnTo,
		Timeout:       c.Timeout,
		Logger:        d.Logger,
	})
}
