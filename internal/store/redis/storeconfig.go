package redis

import (
	"context"
	"log/slog"

	"github.com/rcsso/rcsso/internal/store"
)

// StoreConfig is store type redis as it sits under store: its keys are
// store.redis.url, store.redis.url_file and store.redis.key_prefix
// (Config). It implements store.Config; Open also routes go-redis's own
// messages to log (LogLibrary).
type StoreConfig struct {
	Redis Config `koanf:"redis"`
}

// Validate implements store.Config.
func (c StoreConfig) Validate() error { return c.Redis.Validate() }

// Open implements store.Config.
func (c StoreConfig) Open(ctx context.Context, log *slog.Logger) (store.Store, error) {
	LogLibrary(log)
	return c.Redis.Open(ctx, log)
}

// OpenReadOnly implements store.ReadOnlyOpener (Config.OpenReadOnly).
func (c StoreConfig) OpenReadOnly(ctx context.Context, log *slog.Logger) (store.Store, error) {
	LogLibrary(log)
	return c.Redis.OpenReadOnly(ctx, log)
}

// Shared implements store.Config: every rcsso instance of a deployment may
// use the server.
func (StoreConfig) Shared() bool { return true }
