package postgres

import (
	"context"
	"embed"
	"fmt"
	"hash/crc32"
	"io/fs"
	"log/slog"

	"github.com/rcsso/rcsso/internal/store"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// migrations are the schema changes, one goose SQL file per version
// (migrations/NNNNN_name.sql). Append only: never edit a released file.
//
//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockID is the advisory lock key held while migrating, so that
// instances starting together migrate one after the other (the others
// then find nothing to do). It is rcsso's own, not goose's default, so
// another goose-managed application in the same database does not wait
// for rcsso or the other way round.
var migrationLockID = int64(crc32.ChecksumIEEE([]byte("rcsso store migrations")))

// migrate applies the pending migrations and returns the schema version.
// It refuses a database whose schema is newer than this binary knows.
func migrate(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return 0, err
	}
	// Poll for the lock every second, for at most five minutes.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(migrationLockID), lock.WithLockTimeout(1, 300))
	if err != nil {
		return 0, err
	}
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close() // does not close the pool
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithSessionLocker(locker), goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	current, known, err := p.GetVersions(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	if current > known {
		return 0, fmt.Errorf("migrate: the database schema version %d is newer than this rcsso supports (%d): run the newer rcsso, or restore a backup taken before it migrated", current, known)
	}
	return current, nil
}

// knownVersion is the newest schema version this binary's migrations
// reach: the highest NNNNN of migrations/NNNNN_name.sql.
func knownVersion() (int64, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return 0, err
	}
	var known int64
	for _, name := range names {
		v, err := goose.NumericComponent(name)
		if err != nil {
			return 0, fmt.Errorf("migration file %s: %w", name, err)
		}
		known = max(known, v)
	}
	return known, nil
}

// checkVersion returns the database's schema version without changing
// anything: store.ErrNoStore when rcsso never migrated it, an error naming
// the fix when it is not the version this binary writes.
func checkVersion(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	known, err := knownVersion()
	if err != nil {
		return 0, err
	}
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('goose_db_version') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	var current int64
	if exists {
		if err := pool.QueryRow(ctx, `SELECT COALESCE(max(version_id), 0) FROM goose_db_version`).Scan(&current); err != nil {
			return 0, fmt.Errorf("read schema version: %w", err)
		}
	}
	switch {
	case current == 0:
		return 0, fmt.Errorf("no rcsso schema in this database (check the URL's database name and search_path): %w", store.ErrNoStore)
	case current < known:
		return 0, fmt.Errorf("the database schema version %d is older than this rcsso's (%d): start this rcsso on it once (it migrates the schema), stop it, then try again", current, known)
	case current > known:
		return 0, fmt.Errorf("the database schema version %d is newer than this rcsso supports (%d): use the newer rcsso", current, known)
	}
	return current, nil
}
