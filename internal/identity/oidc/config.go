package oidc

import (
	"context"
	"errors"
	"strings"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
)

// Config is identity source type oidc's configuration (an entry of the
// identity list): rcsso as an OpenID Connect relying party. Register the
// redirect URI <public_url>/auth/<name>/callback at the provider.
type Config struct {
	Issuer           string         `koanf:"issuer"`
	ClientID         string         `koanf:"client_id"`
	ClientSecret     string         `koanf:"client_secret"`
	ClientSecretFile string         `koanf:"client_secret_file"`
	Scopes           []string       `koanf:"scopes"`
	Label            string         `koanf:"label"`
	Claims           claims.Mapping `koanf:"claims"`
}

// Validate implements identity.Config; it reads client_secret_file.
func (c *Config) Validate(b config.Block) error {
	var errs []error
	if _, err := config.ParseOrigin(c.Issuer, true); err != nil {
		errs = append(errs, b.Errorf("issuer", "%v", err))
	}
	if c.ClientID == "" {
		errs = append(errs, b.Errorf("client_id", "register rcsso as a client at the provider with the redirect URI <public_url>/auth/<name>/callback and give its client id"))
	}
	if err := b.ReadSecret("client_secret", &c.ClientSecret, c.ClientSecretFile); err != nil {
		errs = append(errs, err)
	}
	if c.Claims.Subject != "" && c.Claims.Subject != "sub" {
		errs = append(errs, b.Errorf("claims.subject", "OpenID subjects are always the sub claim; leave it out"))
	}
	return errors.Join(errs...)
}

// ManagesRoles implements identity.RoleSource.
func (c *Config) ManagesRoles() (managed, admin bool) { return c.Claims.ManagesRoles() }

// Open implements identity.Config: it performs OpenID Provider discovery.
func (c *Config) Open(ctx context.Context, d identity.Deps) (identity.Source, error) {
	return New(ctx, Options{
		Name:          d.Name,
		Label:         c.Label,
		Issuer:        c.Issuer,
		ClientID:      c.ClientID,
		ClientSecret:  c.ClientSecret,
		Scopes:        c.Scopes,
		RedirectURL:   strings.TrimRight(d.PublicURL.String(), "/") + "/auth/" + d.Name + "/callback",
		Mapping:       c.Claims,
		Sessions:      d.Sessions,
		Once:          d.Store,
		StateKey:      d.Key("rcsso oidc state " + d.Name),
		SecureCookies: d.SecureCookies,
		SafeReturnTo:  d.SafeReturnTo,
		OnLogout:      d.OnLogout,
		Logger:        d.Logger,
	})
}
