package whoami

import (
	"context"
	"errors"
	"time"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
)

// Config is identity source type whoami's configuration (an entry of the
// identity list): rcsso asks a website endpoint who the visitor is.
type Config struct {
	URL     string   `koanf:"url"`
	Cookies []string `koanf:"cookies"`
	Headers []string `koanf:"headers"`
	// Timeout bounds one call (default 3s); CacheTTL how long an answer is
	// kept per visitor (default 10s; negative disables).
	Timeout  time.Duration  `koanf:"timeout"`
	CacheTTL time.Duration  `koanf:"cache_ttl"`
	Claims   claims.Mapping `koanf:"claims"`
}

// Validate implements identity.Config.
func (c *Config) Validate(b config.Block) error {
	var errs []error
	if _, err := config.ParseOrigin(c.URL, true); err != nil {
		errs = append(errs, b.Errorf("url", "the whoami source needs the website endpoint that answers who is logged in: %v", err))
	}
	if c.Timeout < 0 {
		errs = append(errs, b.Errorf("timeout", "must not be negative"))
	}
	return errors.Join(errs...)
}

// ManagesRoles implements identity.RoleSource.
func (c *Config) ManagesRoles() (managed, admin bool) { return c.Claims.ManagesRoles() }

// Open implements identity.Config.
func (c *Config) Open(_ context.Context, d identity.Deps) (identity.Source, error) {
	return New(Options{Name: d.Name, URL: c.URL, Cookies: c.Cookies, Headers: c.Headers,
		Timeout: c.Timeout, CacheTTL: c.CacheTTL, Mapping: c.Claims, Logger: d.Logger})
}
