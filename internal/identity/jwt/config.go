package jwt

import (
	"context"
	"errors"
	"os"
	"strings"
	"time"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
)

// Config is identity source type jwt's configuration (an entry of the
// identity list): a token the website already issues, in a cookie and/or an
// Authorization: Bearer header.
type Config struct {
	Cookie              string   `koanf:"cookie"`
	AuthorizationHeader bool     `koanf:"authorization_header"`
	Algorithms          []string `koanf:"algorithms"`
	// Exactly one key: SecretFile (HS*), PublicKeyFile (a PEM public key or
	// certificate) or JWKSURL.
	SecretFile    string `koanf:"secret_file"`
	PublicKeyFile string `koanf:"public_key_file"`
	JWKSURL       string `koanf:"jwks_url"`
	// Issuer and Audience are required: iss must equal, aud must contain.
	Issuer   string `koanf:"issuer"`
	Audience string `koanf:"audience"`
	// Leeway is the clock skew allowed for exp, nbf and iat.
	Leeway          time.Duration  `koanf:"leeway"`
	AllowMissingExp bool           `koanf:"allow_missing_exp"`
	Claims          claims.Mapping `koanf:"claims"`

	secret, publicKey []byte
}

// Validate implements identity.Config; it reads secret_file and
// public_key_file.
func (c *Config) Validate(b config.Block) error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, b.Errorf(key, format, a...)) }
	if c.Cookie == "" && !c.AuthorizationHeader {
		bad("cookie", "the jwt source needs the cookie name carrying the token, or authorization_header: true")
	}
	if len(c.Algorithms) == 0 {
		bad("algorithms", "list the accepted signing algorithms explicitly, e.g. [RS256] or [HS256]")
	}
	keys := 0
	for _, k := range []string{c.SecretFile, c.PublicKeyFile, c.JWKSURL} {
		if k != "" {
			keys++
		}
	}
	if keys != 1 {
		bad("secret_file", "set exactly one of secret_file (HS*), public_key_file (RS*/ES*/EdDSA PEM) or jwks_url")
	}
	if c.JWKSURL != "" {
		if _, err := config.ParseOrigin(c.JWKSURL, true); err != nil {
			bad("jwks_url", "%v", err)
		}
	}
	if c.Issuer == "" {
		bad("issuer", "the jwt source checks iss: give the issuer your website puts in its tokens")
	}
	if c.Audience == "" {
		bad("audience", "the jwt source checks aud: give the audience your website puts in its tokens (for example rcsso)")
	}
	if c.Leeway < 0 {
		bad("leeway", "must not be negative")
	}
	if c.SecretFile != "" {
		raw, err := os.ReadFile(c.SecretFile)
		if err != nil {
			bad("secret_file", "%v", err)
		}
		c.secret = []byte(strings.TrimRight(string(raw), "\r\n"))
	}
	if c.PublicKeyFile != "" {
		raw, err := os.ReadFile(c.PublicKeyFile)
		if err != nil {
			bad("public_key_file", "%v", err)
		}
		c.publicKey = raw
	}
	return errors.Join(errs...)
}

// ManagesRoles implements identity.RoleSource.
func (c *Config) ManagesRoles() (managed, admin bool) { return c.Claims.ManagesRoles() }

// Open implements identity.Config.
func (c *Config) Open(ctx context.Context, d identity.Deps) (identity.Source, error) {
	return New(ctx, Options{Name: d.Name, Cookie: c.Cookie, Header: c.AuthorizationHeader, Algorithms: c.Algorithms,
		Secret: c.secret, PublicKeyPEM: c.publicKey, JWKSURL: c.JWKSURL, Issuer: c.Issuer, Audience: c.Audience,
		Leeway: c.Leeway, RequireExp: !c.AllowMissingExp, Mapping: c.Claims, Logger: d.Logger})
}
