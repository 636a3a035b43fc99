package postgres

import (
	"context"
	"log/slog"

	"github.com/rcsso/rcsso/internal/store"
)

// StoreConfig is store type postgres as it sits under store: its keys are
// store.postgres.url and store.postgres.url_file (Config). It implements
// store.Config.
type StoreConfig struct {
	Postgres Config `koanf:"postgres"`
}

// Validate implements store.Config.
func (c StoreConfig) Validate() error { return c.Postgres.Validate() }

// Open implements store.Config.
func (c StoreConfig) Open(ctx context.Context, log *slog.Logger) (store.Store, error) {
	return c.Postgres.Open(ctx, log)
}

// OpenReadOnly implements store.ReadOnlyOpener (Config.OpenReadOnly).
func (c StoreConfig) OpenReadOnly(ctx context.Context, log *slog.Logger) (store.Store, error) {
	return c.Postgres.OpenReadOnly(ctx, log)
}

// Shared implements store.Config: every rcsso instance of a deployment may
// use the database.
func (StoreConfig) Shared() bool { return true }
