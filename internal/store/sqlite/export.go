package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rcsso/rcsso/internal/store"
)

// OpenReadOnly implements store.ReadOnlyOpener: OpenReadOnly on Path (its
// default included).
func (c Config) OpenReadOnly(ctx context.Context, _ *slog.Logger) (store.Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	st, err := OpenReadOnly(ctx, c.path())
	if err != nil {
		return nil, err
	}
	return st, nil
}

// OpenReadOnly opens the existing SQLite database at path for reading
// only (SQLite's mode=ro): it writes nothing to the database (every write
// on the store fails), runs no migration and creates no database; reading
// a WAL database makes SQLite create its -shm index and an empty -wal
// beside it if they are absent (they hold no data). A path that does not exist,
// or a database without rcsso's schema, fails with an error wrapping
// store.ErrNoStore; a schema older than this binary's is refused (start
// this rcsso on it once, which upgrades it), as is a newer one. Another
// process may keep using the database meanwhile (WAL readers do not block
// writers). MemoryPath is refused: there is nothing to read.
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	switch {
	case path == "":
		return nil, errors.New("sqlite: open read-only: empty path")
	case path == MemoryPath:
		return nil, fmt.Errorf("sqlite: open read-only: %s is a new, empty database: %w", MemoryPath, store.ErrNoStore)
	case strings.ContainsRune(path, '?') || strings.HasPrefix(path, "file:"):
		return nil, fmt.Errorf("sqlite: open read-only: unsupported path %q (contains '?' or starts with \"file:\")", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open read-only: %w", err)
	}
	file, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("sqlite: %s does not exist: %w", abs, store.ErrNoStore)
	case err != nil:
		return nil, fmt.Errorf("sqlite: open read-only: %w", err)
	case !file.Mode().IsRegular():
		return nil, fmt.Errorf("sqlite: %s is not a regular file", abs)
	}
	// A "file:" URI, so that SQLite itself applies mode=ro (see the
	// driver's documentation); the path is escaped as a URI path.
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: "mode=ro&_pragma=busy_timeout(5000)"}).String()
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open read-only: %w", err)
	}
	db.SetMaxOpenConns(2)
	s := &Store{db: db, path: abs, file: file}
	if err := s.checkSchema(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open read-only %s: %w", abs, err), s.Close())
	}
	if s.getSession, err = s.db.PrepareContext(ctx, getSessionSQL); err == nil {
		s.getToken, err = s.db.PrepareContext(ctx, getTokenSQL)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open read-only %s: %w", abs, err), s.Close())
	}
	return s, nil
}

// checkSchema reports whether the database holds rcsso's schema at the
// version this binary writes, without changing it.
func (s *Store) checkSchema(ctx context.Context) error {
	var tables int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'`).Scan(&tables); err != nil {
		return err
	}
	if tables == 0 {
		return fmt.Errorf("no rcsso schema in it: %w", store.ErrNoStore)
	}
	var version int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&version); err != nil {
		return err
	}
	switch {
	case version == 0:
		return fmt.Errorf("no rcsso schema in it: %w", store.ErrNoStore)
	case version < len(migrations):
		return fmt.Errorf("its schema version %d is older than this rcsso's (%d): start this rcsso on it once (it upgrades the schema in place), stop it, then try again", version, len(migrations))
	case version > len(migrations):
		return fmt.Errorf("its schema version %d is newer than this rcsso supports (%d): use the newer rcsso", version, len(migrations))
	}
	return nil
}

// Export implements store.Exporter in one read transaction (a snapshot),
// each kind ordered by key. While it runs, the store's other calls may
// wait for a connection (MemoryPath has one): v's functions must not use
// the store.
func (s *Store) Export(ctx context.Context, v store.Visitor) error {
	if err := ctx.Err(); err != nil {
		return wrap("export", err)
	}
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return wrap("export", err)
	}
	defer func() { _ = tx.Rollback() }()
	if v.Account != nil {
		err := exportRows(ctx, tx, `SELECT username, password_hash, name, email, created_at FROM accounts ORDER BY username`, nil,
			func(r *sql.Rows) error {
				var a store.Account
				var created int64
				if err := r.Scan(&a.Username, &a.PasswordHash, &a.Name, &a.Email, &created); err != nil {
					return wrap("export accounts", err)
				}
				a.CreatedAt = fromMillis(created)
				return v.Account(a)
			})
		if err != nil {
			return err
		}
	}
	if v.Session != nil {
		err := exportRows(ctx, tx, `SELECT id_hash, subject, source, username, name, email, profile, created_at, expires_at
FROM sessions WHERE expires_at > ? ORDER BY id_hash`,
			[]any{time.Now().UnixMilli()}, func(r *sql.Rows) error {
				var sess store.Session
				var created, expires int64
				var profile string
				if err := r.Scan(&sess.IDHash, &sess.Subject, &sess.Source, &sess.Username, &sess.Name, &sess.Email,
					&profile, &created, &expires); err != nil {
					return wrap("export sessions", err)
				}
				decodeProfile(profile, &sess)
				sess.CreatedAt, sess.ExpiresAt = fromMillis(created), fromMillis(expires)
				return v.Session(sess)
			})
		if err != nil {
			return err
		}
	}
	if v.Link != nil {
		err := exportRows(ctx, tx, `SELECT `+linkColumns+` FROM links ORDER BY subject`, nil, func(r *sql.Rows) error {
			l, err := scanLink(r)
			if err != nil {
				return wrap("export links", err)
			}
			return v.Link(l)
		})
		if err != nil {
			return err
		}
	}
	if v.Token != nil {
		err := exportRows(ctx, tx, `SELECT subject, user_id, ciphertext, minted_at, validated_at FROM tokens ORDER BY subject`, nil,
			func(r *sql.Rows) error {
				var t store.Token
				var minted, validated int64
				if err := r.Scan(&t.Subject, &t.UserID, &t.Ciphertext, &minted, &validated); err != nil {
					return wrap("export tokens", err)
				}
				t.MintedAt, t.ValidatedAt = fromMillis(minted), fromMillis(validated)
				return v.Token(t)
			})
		if err != nil {
			return err
		}
	}
	return nil
}

// exportRows runs query in tx and calls fn on each row until fn fails;
// fn's error is returned as is.
func exportRows(ctx context.Context, tx *sql.Tx, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return wrap("export", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return wrap("export", err)
	}
	return nil
}
