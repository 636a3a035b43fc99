// Package postgres is a store.Store on PostgreSQL (store.type postgres),
// for several rcsso instances behind a load balancer sharing one state. It
// uses pgx v5 (github.com/jackc/pgx/v5) with a connection pool, and
// implements the store.Locker, store.ChangeFeed and store.Exporter
// capabilities (OpenReadOnly opens a source for rcsso store migrate).
//
// Layout: one table per record type (accounts, sessions, links, tokens,
// codes, used, counters, leases) in the schema first on the connection's
// search_path (public unless the URL sets search_path), created and
// upgraded when the store is opened by goose (github.com/pressly/goose)
// from the SQL files embedded from migrations/, version bookkeeping in
// goose_db_version. Each migration runs in its own transaction, and a
// PostgreSQL advisory lock serialises instances that start at the same
// time, so exactly one of them migrates. A database whose schema is newer
// than this binary knows is refused. Keys are byte-wise (COLLATE "C"); keys
// rcsso builds itself and never reads back (UseOnce, Count, leases) are
// bytea and may hold any bytes.
//
// Clock: every expiry (sessions, codes, single-use keys, counter windows,
// leases) is judged by the PostgreSQL server's clock (now()), one clock for
// every instance, so instances with skewed clocks still agree on who holds
// a lease or how full a counter is; an absolute expiry a caller computed
// (Session.ExpiresAt) is off by that caller's skew. Times are timestamptz
// (microseconds) and returned in UTC.
//
// Leases (store.Locker) are rows of the leases table taken by one
// conditional upsert, not session advisory locks, so that a lease has the
// TTL the interface promises whatever happens to connections (see TryLock).
//
// Purging: every PutSession, PutCode, UseOnce, Count and TryLock deletes
// up to 100 expired rows of its table in the same statement (skipping rows
// another instance is purging), which keeps the tables bounded without a
// background job.
//
// Timeouts and outages: every call is bounded by its context only; opening
// a connection gives up after 10 s unless the URL sets connect_timeout. The
// pool replaces broken connections by itself: after the server restarts,
// calls fail until it is back and then work again without reopening the
// store. A write that returned nil was committed; one that failed may or
// may not have been. The change feed's connection reconnects, with a
// backoff up to 5 s, and reports subject "" after a loss.
//
// Text: PostgreSQL text cannot hold NUL bytes or invalid UTF-8. A lookup by
// such a key finds nothing (ErrNotFound, or nil for deletes); a write of
// such a value fails with an error that does not repeat the value.
//
// Errors are prefixed "postgres: <operation>:" (Open's also with the
// configuration key, store.postgres.url or url_file) and wrap the cause
// (ErrNotFound, ErrConflict, *store.LinkTakenError, a context error or a
// pgx error); they never contain the password of the connection URL,
// session ids, token ciphertext or other record contents.
package postgres

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rcsso/rcsso/internal/store"
)

// Config is the store.postgres configuration block.
type Config struct {
	// URL is the PostgreSQL connection URL, e.g.
	// "postgres://rcsso:secret@db.internal:5432/rcsso?sslmode=verify-full"
	// (libpq's keyword/value form "host=… dbname=…" works too; pgx
	// parameters such as pool_max_conns and connect_timeout are honoured).
	// It holds the password: prefer URLFile.
	URL string `koanf:"url"`
	// URLFile is a file holding the URL (trailing newlines ignored), read by
	// Open.
	URLFile string `koanf:"url_file"`
}

// Validate checks the block without reading URLFile or contacting the
// server. Messages name the key (store.postgres.url, store.postgres.url_file)
// and the fix, and never contain the password.
func (c Config) Validate() error {
	switch {
	case c.URL != "" && c.URLFile != "":
		return errors.New("store.postgres.url and store.postgres.url_file are both set: keep one (url_file keeps the password out of the configuration)")
	case c.URL == "" && c.URLFile == "":
		return errors.New("store.postgres.url: store.type postgres needs the database's connection URL, " +
			"e.g. postgres://rcsso@db.internal:5432/rcsso?sslmode=verify-full: set store.postgres.url, " +
			"or store.postgres.url_file to a file holding it (keeps the password out of the configuration)")
	case c.URL != "":
		if _, err := parseConfig(c.URL); err != nil {
			return fmt.Errorf("store.postgres.url: %w", err)
		}
	}
	return nil
}

// connectTimeout bounds opening one connection unless the URL sets
// connect_timeout.
const connectTimeout = 10 * time.Second

// parseConfig parses a connection URL into a pool configuration; its
// error never contains the password.
func parseConfig(conn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(conn)
	if err != nil {
		return nil, fmt.Errorf("%w; want postgres://user:password@host:5432/database", redact(err, secretsIn(conn)...))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	return cfg, nil
}

// Store is a store.Store on PostgreSQL. It is safe for concurrent use by
// any number of goroutines and processes; create it with Config.Open and
// release it with Close.
type Store struct {
	pool     *pgxpool.Pool
	listener *pgx.ConnConfig // for change feed connections
	password string          // redacted from errors
	log      *slog.Logger

	// closing is cancelled by Close; change feeds end with it.
	closing context.Context
	close   context.CancelFunc
	feeds   sync.WaitGroup
}

var (
	_ store.Store      = (*Store)(nil)
	_ store.Locker     = (*Store)(nil)
	_ store.ChangeFeed = (*Store)(nil)
	_ store.Exporter   = (*Store)(nil)

	_ store.ReadOnlyOpener = StoreConfig{}
)

// Open connects to the database (reading URLFile if set), brings its
// schema up to date and returns the store. ctx bounds connecting and
// migrating only (a migration waits up to five minutes for another
// instance's). log gets one line at open and the change feed's losses and
// reconnections; nil discards them. Errors name the key the URL came from
// ("store.postgres.url: postgres: open user@host:port/db: …") and never
// contain its password.
func (c Config) Open(ctx context.Context, log *slog.Logger) (*Store, error) {
	return c.open(ctx, log, false)
}

// OpenReadOnly connects like Open but changes nothing in the database: it
// runs no migration, and every transaction of the store is read-only
// (default_transaction_read_only), so writes fail on the server. A
// database without rcsso's schema fails with an error wrapping
// store.ErrNoStore; a schema older or newer than this binary's is refused,
// naming the fix. It is how rcsso store migrate reads its source.
func (c Config) OpenReadOnly(ctx context.Context, log *slog.Logger) (*Store, error) {
	return c.open(ctx, log, true)
}

func (c Config) open(ctx context.Context, log *slog.Logger, readOnly bool) (*Store, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	key, conn := "store.postgres.url", c.URL
	if c.URLFile != "" {
		key = "store.postgres.url_file"
		b, err := os.ReadFile(c.URLFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if conn = strings.TrimRight(string(b), "\r\n"); conn == "" {
			return nil, fmt.Errorf("%s: %s is empty: write the connection URL into it", key, c.URLFile)
		}
	}
	cfg, err := parseConfig(conn)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	if readOnly {
		cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{listener: cfg.ConnConfig.Copy(), password: cfg.ConnConfig.Password, log: log}
	s.closing, s.close = context.WithCancel(context.Background())
	target := fmt.Sprintf("%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("%s: postgres: open %s: %w", key, target, s.redact(err))
	}
	if err := s.pool.Ping(ctx); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("%s: postgres: open %s: %w (check the URL's host, port, user, password and database, "+
			"and that the server lets rcsso connect)", key, target, s.redact(err))
	}
	var version int64
	if readOnly {
		version, err = checkVersion(ctx, s.pool)
	} else {
		version, err = migrate(ctx, s.pool)
	}
	if err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("%s: postgres: open %s: %w", key, target, s.redact(err))
	}
	log.Info("postgres store open", "target", target, "schema_version", version, "read_only", readOnly)
	return s, nil
}

// wrap prefixes err with the operation and maps pgx and server errors to
// the store's: no rows is ErrNotFound, a unique violation ErrConflict, text
// PostgreSQL cannot hold errNotText. The password never appears.
func (s *Store) wrap(op string, err error) error {
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		err = store.ErrNotFound
	case errors.As(err, &pgErr) && pgErr.Code == "23505":
		err = fmt.Errorf("%w (%s)", store.ErrConflict, pgErr.ConstraintName)
	case errors.As(err, &pgErr) && (pgErr.Code == "22021" || pgErr.Code == "22P05"):
		err = errNotText
	default:
		err = s.redact(err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// errNotText is the error for a value PostgreSQL text cannot store; unlike
// the server's message it does not quote the bytes.
var errNotText = errors.New("a value is not UTF-8 text or holds a NUL byte, which PostgreSQL text cannot store")

// textOK reports whether PostgreSQL text can hold v. A lookup by a key
// that fails it cannot match a row.
func textOK(v string) bool { return utf8.ValidString(v) && !strings.ContainsRune(v, 0) }

func (s *Store) redact(err error) error { return redact(err, s.password) }

// redact returns err with every secret replaced by "xxxxx" in its
// message, keeping it unwrappable (errors.Is still finds context errors).
func redact(err error, secrets ...string) error {
	msg := err.Error()
	changed := false
	for _, sec := range secrets {
		if sec != "" && strings.Contains(msg, sec) {
			msg, changed = strings.ReplaceAll(msg, sec, "xxxxx"), true
		}
	}
	if !changed {
		return err
	}
	return &redacted{msg: msg, err: err}
}

// redacted is an error whose message had secrets removed; Unwrap reaches
// the cause (for errors.Is), whose own message still holds them: never
// print it.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// secretsIn returns the candidate passwords in a connection string that may
// not parse: the userinfo password of a URL (raw and unescaped) and the
// values of password= and sslpassword= keywords (quoted or not).
func secretsIn(conn string) []string {
	var out []string
	if _, rest, ok := strings.Cut(conn, "://"); ok {
		// userinfo ends at the last '@' before the path.
		if i := strings.IndexAny(rest, "/?#"); i >= 0 {
			if at := strings.LastIndexByte(rest[:i], '@'); at >= 0 {
				rest = rest[:at]
			} else {
				rest = ""
			}
		} else if at := strings.LastIndexByte(rest, '@'); at >= 0 {
			rest = rest[:at]
		} else {
			rest = ""
		}
		if _, pw, ok := strings.Cut(rest, ":"); ok && pw != "" {
			out = append(out, withUnescaped(pw)...)
		}
	}
	for _, kw := range []string{"password=", "sslpassword="} {
		for s := conn; ; {
			i := strings.Index(s, kw)
			if i < 0 {
				break
			}
			s = s[i+len(kw):]
			var v string
			if strings.HasPrefix(s, "'") {
				v, _, _ = strings.Cut(s[1:], "'")
			} else {
				v, _, _ = strings.Cut(s, " ")
				v, _, _ = strings.Cut(v, "&")
			}
			if v != "" {
				out = append(out, withUnescaped(v)...)
			}
		}
	}
	// Longest first, so that a secret containing another is replaced whole.
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// withUnescaped is v and its %-decoded forms (userinfo, query value).
func withUnescaped(v string) []string {
	out := []string{v}
	if u, err := url.PathUnescape(v); err == nil && u != v {
		out = append(out, u)
	}
	if u, err := url.QueryUnescape(v); err == nil && u != v {
		out = append(out, u)
	}
	return out
}

// interval is d as a PostgreSQL interval (microseconds).
func interval(d time.Duration) pgtype.Interval {
	return pgtype.Interval{Microseconds: d.Microseconds(), Valid: true}
}

// opt is t for a nullable timestamptz column: NULL for the zero time.
func opt(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// fromOpt is the time read from a nullable column, in UTC; zero for NULL.
func fromOpt(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// Ping implements store.Store: a connection answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.wrap("ping", err)
	}
	return nil
}

// Close implements store.Store: it ends the change feeds and closes the
// pool, waiting for connections in use to be returned.
func (s *Store) Close() error {
	s.close()
	s.feeds.Wait()
	s.pool.Close()
	return nil
}

// newToken is a lease token: 128 random bits as base32 text.
func newToken() string { return rand.Text() }
