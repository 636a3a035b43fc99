// Package sqlite is a store.Store on SQLite, using the pure-Go driver
// modernc.org/sqlite (no cgo).
//
// Layout: one table per record type plus schema_version, created and upgraded
// by an embedded migration runner when the database is opened. Times are
// stored as INTEGER unix milliseconds (UTC) and returned in UTC, so they
// round-trip to the millisecond. File databases run in WAL mode with a 5 s
// busy timeout and BEGIN IMMEDIATE transactions, so several processes or
// goroutines may share one file.
//
// Expired sessions are never returned by GetSession. They are purged
// opportunistically: every PutSession deletes up to 100 sessions whose
// ExpiresAt has passed, in the same transaction. With at least as many logins
// as expiries this keeps the table bounded without a background job.
//
// Errors are prefixed "sqlite: <operation>:" and wrap the cause (ErrNotFound,
// ErrConflict, a context error or a driver error); they never contain session
// ids, token ciphertext or other record contents.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers driver "sqlite"

	"github.com/rcsso/rcsso/internal/store"
)

// MemoryPath is the path that opens a private in-memory database (one per
// Open), for tests.
const MemoryPath = ":memory:"

// purgeBatch bounds how many expired sessions one PutSession deletes.
const purgeBatch = 100

// fileParams are the DSN parameters for file databases. Each connection's
// page cache is 1 MiB (cache_size -1024 KiB; SQLite's default is 2 MiB):
// the hot cache answers the API URL's reads, so the page cache mostly holds
// what the operating system's file cache holds too; with four connections
// that is up to 4 MiB less resident memory on a large database.
const fileParams = "_pragma=busy_timeout(5000)&_pragma=cache_size(-1024)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_txlock=immediate"

// memoryParams are the DSN parameters for MemoryPath.
const memoryParams = "_pragma=foreign_keys(1)&_txlock=immediate"

// Config is store type sqlite's configuration (the default store).
type Config struct {
	// Path is the database file (store.path), default "rcsso.db"; a new
	// file is created with mode 0600. Several rcsso processes on one host
	// may share it; the generated token encryption key is kept beside it
	// in "<path>.key".
	Path string `koanf:"path"`
}

// path is Path or its default.
func (c Config) path() string {
	if c.Path == "" {
		return "rcsso.db"
	}
	return c.Path
}

// Validate implements store.Config.
func (c Config) Validate() error {
	if strings.ContainsRune(c.Path, '?') || strings.HasPrefix(c.Path, "file:") {
		return fmt.Errorf("config: store.path: %q is not a plain file path (no '?', no file: prefix); give one such as /var/lib/rcsso/rcsso.db", c.Path)
	}
	return nil
}

// Open implements store.Config.
func (c Config) Open(ctx context.Context, _ *slog.Logger) (store.Store, error) {
	st, err := Open(ctx, c.path())
	if err != nil {
		return nil, fmt.Errorf("store.path: opening %s: %w", c.path(), err)
	}
	return st, nil
}

// Shared implements store.Config: one host (processes on it may share the
// file).
func (Config) Shared() bool { return false }

// KeyPath implements store.KeyKeeper: "<path>.key".
func (c Config) KeyPath() string { return c.path() + ".key" }

// Store is a store.Store backed by an SQLite database. It is safe for
// concurrent use; create it with Open and release it with Close.
type Store struct {
	db *sql.DB
	// path and file identify the database file opened (empty and nil for
	// MemoryPath), so Ping notices when it is deleted or replaced.
	path string
	file os.FileInfo
	// Hot-path statements, prepared once.
	getSession *sql.Stmt
	getToken   *sql.Stmt
}

var (
	_ store.Store      = (*Store)(nil)
	_ store.Locker     = (*Store)(nil)
	_ store.ChangeFeed = (*Store)(nil)
	_ store.Exporter   = (*Store)(nil)

	_ store.ReadOnlyOpener = Config{}
	_ store.KeyKeeper      = Config{}
)

// Open opens (creating if needed) the SQLite database at path and brings its
// schema up to date. path is a file system path; a new file is created with
// mode 0600 (an existing file's mode is left alone). The special path
// MemoryPath (":memory:") opens a private in-memory database on a single
// connection. Paths containing '?' or starting with "file:" are rejected, as
// the driver would read them as DSN syntax. ctx bounds opening and migration
// only.
func Open(ctx context.Context, path string) (*Store, error) {
	var dsn string
	var file os.FileInfo
	conns := max(4, runtime.GOMAXPROCS(0))
	switch {
	case path == "":
		return nil, errors.New("sqlite: open: empty path")
	case path == MemoryPath:
		dsn = MemoryPath + "?" + memoryParams
		// Every connection to :memory: is a separate database: use exactly one.
		conns = 1
	case strings.ContainsRune(path, '?') || strings.HasPrefix(path, "file:"):
		return nil, fmt.Errorf("sqlite: open: unsupported path %q (contains '?' or starts with \"file:\")", path)
	default:
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("sqlite: open: %w", err)
		}
		file, err = f.Stat()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: open: %w", err)
		}
		dsn = path + "?" + fileParams
	}

	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	s := &Store{db: db, file: file}
	if file != nil {
		if s.path, err = filepath.Abs(path); err != nil {
			return nil, errors.Join(fmt.Errorf("sqlite: open: %w", err), db.Close())
		}
	}
	if err := s.init(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("sqlite: open: %w", err), s.Close())
	}
	return s, nil
}

// Hot-path queries: one primary-key SELECT each (see TestHotPathQueryPlans).
const (
	getSessionSQL = `SELECT subject, source, username, name, email, profile, created_at, expires_at
FROM sessions WHERE id_hash = ? AND expires_at > ?`
	getTokenSQL = `SELECT user_id, ciphertext, minted_at, validated_at FROM tokens WHERE subject = ?`
)

func (s *Store) init(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return err
	}
	if err := migrate(ctx, s.db); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var err error
	if s.getSession, err = s.db.PrepareContext(ctx, getSessionSQL); err != nil {
		return fmt.Errorf("prepare get session: %w", err)
	}
	if s.getToken, err = s.db.PrepareContext(ctx, getTokenSQL); err != nil {
		return fmt.Errorf("prepare get token: %w", err)
	}
	return nil
}

func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func wrap(op string, err error) error { return fmt.Errorf("sqlite: %s: %w", op, err) }

// CreateAccount implements store.Store; ErrConflict if the username exists.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO accounts (username, password_hash, name, email, created_at)
VALUES (?, ?, ?, ?, ?) ON CONFLICT (username) DO NOTHING`,
		strings.ToLower(a.Username), a.PasswordHash, a.Name, a.Email, millis(a.CreatedAt))
	if err != nil {
		return wrap("create account", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap("create account", err)
	}
	if n == 0 {
		return wrap("create account", store.ErrConflict)
	}
	return nil
}

// GetAccount implements store.Store; ErrNotFound if absent.
func (s *Store) GetAccount(ctx context.Context, username string) (store.Account, error) {
	var a store.Account
	var created int64
	err := s.db.QueryRowContext(ctx, `SELECT username, password_hash, name, email, created_at
FROM accounts WHERE username = ?`, strings.ToLower(username)).
		Scan(&a.Username, &a.PasswordHash, &a.Name, &a.Email, &created)
	if err != nil {
		return store.Account{}, wrap("get account", notFound(err))
	}
	a.CreatedAt = fromMillis(created)
	return a, nil
}

// ListAccounts implements store.Store: all accounts ordered by username.
func (s *Store) ListAccounts(ctx context.Context) ([]store.Account, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT username, password_hash, name, email, created_at
FROM accounts ORDER BY username`)
	if err != nil {
		return nil, wrap("list accounts", err)
	}
	defer rows.Close()
	out := []store.Account{}
	for rows.Next() {
		var a store.Account
		var created int64
		if err := rows.Scan(&a.Username, &a.PasswordHash, &a.Name, &a.Email, &created); err != nil {
			return nil, wrap("list accounts", err)
		}
		a.CreatedAt = fromMillis(created)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap("list accounts", err)
	}
	return out, nil
}

// DeleteAccount implements store.Store; ErrNotFound if absent.
func (s *Store) DeleteAccount(ctx context.Context, username string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM accounts WHERE username = ?`, strings.ToLower(username))
	if err != nil {
		return wrap("delete account", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return wrap("delete account", err)
	}
	if n == 0 {
		return wrap("delete account", store.ErrNotFound)
	}
	return nil
}

// PutSession implements store.Store. In the same transaction it deletes up to
// 100 expired sessions (see the package comment).
func (s *Store) PutSession(ctx context.Context, sess store.Session) (err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return wrap("put session", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash IN
(SELECT id_hash FROM sessions WHERE expires_at <= ? LIMIT ?)`, time.Now().UnixMilli(), purgeBatch); err != nil {
		return wrap("put session: purge expired", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sessions
(id_hash, subject, source, username, name, email, profile, created_at, expires_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id_hash) DO UPDATE SET
	subject = excluded.subject, source = excluded.source, username = excluded.username,
	name = excluded.name, email = excluded.email, profile = excluded.profile,
	created_at = excluded.created_at, expires_at = excluded.expires_at`,
		sess.IDHash, sess.Subject, sess.Source, sess.Username, sess.Name, sess.Email, encodeProfile(sess),
		millis(sess.CreatedAt), millis(sess.ExpiresAt)); err != nil {
		return wrap("put session", err)
	}
	if err := tx.Commit(); err != nil {
		return wrap("put session: commit", err)
	}
	return nil
}

// GetSession implements store.Store; ErrNotFound if absent or expired. It is
// one primary-key SELECT.
func (s *Store) GetSession(ctx context.Context, idHash string) (store.Session, error) {
	sess := store.Session{IDHash: idHash}
	var created, expires int64
	var profile string
	err := s.getSession.QueryRowContext(ctx, idHash, time.Now().UnixMilli()).
		Scan(&sess.Subject, &sess.Source, &sess.Username, &sess.Name, &sess.Email, &profile, &created, &expires)
	if err != nil {
		return store.Session{}, wrap("get session", notFound(err))
	}
	decodeProfile(profile, &sess)
	sess.CreatedAt, sess.ExpiresAt = fromMillis(created), fromMillis(expires)
	return sess, nil
}

// DeleteSession implements store.Store; nil if absent.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash = ?`, idHash); err != nil {
		return wrap("delete session", err)
	}
	return nil
}

// DeleteSessionsBySubject implements store.Store. The count includes expired
// sessions not yet purged.
func (s *Store) DeleteSessionsBySubject(ctx context.Context, subject string) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE subject = ?`, subject)
	if err != nil {
		return 0, wrap("delete sessions by subject", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, wrap("delete sessions by subject", err)
	}
	return int(n), nil
}

const linkColumns = `subject, user_id, username, profile_hash, profile_synced_at, last_mint_at,
creating_username, creating_at, deactivated_at, updated_at, chat_logged_out_at, secret, rooms`

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface{ Scan(...any) error }

func scanLink(r rowScanner) (store.Link, error) {
	var l store.Link
	var synced, minted, creating, deactivated, updated, loggedOut int64
	var rooms string
	err := r.Scan(&l.Subject, &l.UserID, &l.Username, &l.ProfileHash, &synced, &minted,
		&l.CreatingUsername, &creating, &deactivated, &updated, &loggedOut, &l.Secret, &rooms)
	if err != nil {
		return store.Link{}, err
	}
	if l.Rooms, err = store.DecodeRooms(rooms); err != nil {
		return store.Link{}, err
	}
	l.UpdatedAt = fromMillis(updated)
	l.ProfileSyncedAt, l.LastMintAt, l.CreatingAt, l.ChatLoggedOutAt = fromOptMillis(synced), fromOptMillis(minted), fromOptMillis(creating), fromOptMillis(loggedOut)
	l.DeactivatedAt = fromOptMillis(deactivated)
	return l, nil
}

// optMillis stores a zero time as 0 ("never").
func optMillis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return millis(t)
}

func fromOptMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return fromMillis(ms)
}

// GetLink implements store.Store; ErrNotFound if absent.
func (s *Store) GetLink(ctx context.Context, subject string) (store.Link, error) {
	l, err := scanLink(s.db.QueryRowContext(ctx, `SELECT `+linkColumns+` FROM links WHERE subject = ?`, subject))
	if err != nil {
		return store.Link{}, wrap("get link", notFound(err))
	}
	return l, nil
}

// LinkByUserID implements store.Store; ErrNotFound if absent.
func (s *Store) LinkByUserID(ctx context.Context, userID string) (store.Link, error) {
	if userID == "" {
		return store.Link{}, wrap("link by user id", store.ErrNotFound)
	}
	l, err := scanLink(s.db.QueryRowContext(ctx, `SELECT `+linkColumns+` FROM links WHERE user_id = ?`, userID))
	if err != nil {
		return store.Link{}, wrap("link by user id", notFound(err))
	}
	return l, nil
}

// UpdateLink implements store.Store in one write transaction (BEGIN
// IMMEDIATE), so concurrent updates, from this process or another one on the
// same file, are serialised. The unique index links_user_id backs the
// one-subject-per-user rule.
func (s *Store) UpdateLink(ctx context.Context, subject string, update func(*store.Link) error) (_ store.Link, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return store.Link{}, wrap("update link", err)
	}
	defer func() {
		if err == nil {
			return
		}
		if rerr := ignoreDone(tx.Rollback()); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	l, err := scanLink(tx.QueryRowContext(ctx, `SELECT `+linkColumns+` FROM links WHERE subject = ?`, subject))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		l = store.Link{Subject: subject}
	case err != nil:
		return store.Link{}, wrap("update link", err)
	}
	if err := update(&l); err != nil {
		return store.Link{}, err
	}
	l.Subject = subject
	if l.UserID != "" {
		var holder string
		err := tx.QueryRowContext(ctx, `SELECT subject FROM links WHERE user_id = ? AND subject <> ?`, l.UserID, subject).Scan(&holder)
		switch {
		case err == nil:
			return store.Link{}, wrap("update link", &store.LinkTakenError{UserID: l.UserID, Holder: holder})
		case !errors.Is(err, sql.ErrNoRows):
			return store.Link{}, wrap("update link", err)
		}
	}
	l.UpdatedAt = fromMillis(time.Now().UnixMilli())
	if !l.Rooms.SyncedAt.IsZero() {
		l.Rooms.SyncedAt = fromMillis(l.Rooms.SyncedAt.UnixMilli())
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO links (`+linkColumns+`)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (subject) DO UPDATE SET
	user_id = excluded.user_id, username = excluded.username, profile_hash = excluded.profile_hash,
	profile_synced_at = excluded.profile_synced_at, last_mint_at = excluded.last_mint_at,
	creating_username = excluded.creating_username, creating_at = excluded.creating_at,
	deactivated_at = excluded.deactivated_at,
	updated_at = excluded.updated_at, chat_logged_out_at = excluded.chat_logged_out_at, secret = excluded.secret,
	rooms = excluded.rooms`,
		subject, l.UserID, l.Username, l.ProfileHash, optMillis(l.ProfileSyncedAt), optMillis(l.LastMintAt),
		l.CreatingUsername, optMillis(l.CreatingAt), optMillis(l.DeactivatedAt), millis(l.UpdatedAt), optMillis(l.ChatLoggedOutAt), l.Secret,
		store.EncodeRooms(l.Rooms)); err != nil {
		return store.Link{}, wrap("update link", err)
	}
	if err := tx.Commit(); err != nil {
		return store.Link{}, wrap("update link: commit", err)
	}
	return l, nil
}

// GetToken implements store.Store; ErrNotFound if absent. It is one
// primary-key SELECT.
func (s *Store) GetToken(ctx context.Context, subject string) (store.Token, error) {
	t := store.Token{Subject: subject}
	var minted, validated int64
	err := s.getToken.QueryRowContext(ctx, subject).Scan(&t.UserID, &t.Ciphertext, &minted, &validated)
	if err != nil {
		return store.Token{}, wrap("get token", notFound(err))
	}
	t.MintedAt, t.ValidatedAt = fromMillis(minted), fromMillis(validated)
	return t, nil
}

// PutToken implements store.Store.
func (s *Store) PutToken(ctx context.Context, t store.Token) error {
	// COALESCE: the driver binds a nil (or possibly an empty) slice as NULL.
	if _, err := s.db.ExecContext(ctx, `INSERT INTO tokens (subject, user_id, ciphertext, minted_at, validated_at)
VALUES (?, ?, COALESCE(?, x''), ?, ?)
ON CONFLICT (subject) DO UPDATE SET
	user_id = excluded.user_id, ciphertext = excluded.ciphertext,
	minted_at = excluded.minted_at, validated_at = excluded.validated_at`,
		t.Subject, t.UserID, t.Ciphertext, millis(t.MintedAt), millis(t.ValidatedAt)); err != nil {
		return wrap("put token", err)
	}
	return nil
}

// DeleteLink implements store.Store; nil if absent.
func (s *Store) DeleteLink(ctx context.Context, subject string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM links WHERE subject = ?`, subject); err != nil {
		return wrap("delete link", err)
	}
	return nil
}

// DeleteToken implements store.Store; nil if absent.
func (s *Store) DeleteToken(ctx context.Context, subject string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM tokens WHERE subject = ?`, subject); err != nil {
		return wrap("delete token", err)
	}
	return nil
}

// Ping implements store.Store: it checks that the database file is still
// the one opened and that a connection answers a query. A file deleted or
// replaced (another inode) while rcsso runs fails Ping ("sqlite: ping:
// database file <path> was deleted …"): SQLite keeps writing to the
// unlinked file, so everything written afterwards would be lost at the next
// restart.
func (s *Store) Ping(ctx context.Context) error {
	if s.file != nil {
		now, err := os.Stat(s.path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("sqlite: ping: database file %s was deleted while rcsso runs; what rcsso writes now is lost at restart: restore the file or restart rcsso", s.path)
		case err != nil:
			return wrap("ping", err)
		case !os.SameFile(s.file, now):
			return fmt.Errorf("sqlite: ping: database file %s was replaced while rcsso runs (rcsso still writes the old, unlinked file): restart rcsso", s.path)
		}
	}
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// Close implements store.Store: it closes the prepared statements and the
// database. For a MemoryPath store the data is gone afterwards.
func (s *Store) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.getSession, s.getToken} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	errs = append(errs, s.db.Close())
	if err := errors.Join(errs...); err != nil {
		return wrap("close", err)
	}
	return nil
}

// notFound maps sql.ErrNoRows to store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return store.ErrNotFound
	}
	return err
}

// sessionProfile is the JSON of the sessions.profile column.
type sessionProfile struct {
	EmailVerified bool     `json:"email_verified,omitempty"`
	AvatarURL     string   `json:"avatar_url,omitempty"`
	Roles         []string `json:"roles"`  // null = not managed
	Groups        []string `json:"groups"` // null or absent = the source does not say
}

func encodeProfile(s store.Session) string {
	if !s.EmailVerified && s.AvatarURL == "" && s.Roles == nil && s.Groups == nil {
		return "{}"
	}
	b, _ := json.Marshal(sessionProfile{EmailVerified: s.EmailVerified, AvatarURL: s.AvatarURL, Roles: s.Roles, Groups: s.Groups})
	return string(b)
}

func decodeProfile(raw string, s *store.Session) {
	if raw == "{}" || raw == "" {
		return
	}
	var p sessionProfile
	if json.Unmarshal([]byte(raw), &p) == nil {
		s.EmailVerified, s.AvatarURL, s.Roles, s.Groups = p.EmailVerified, p.AvatarURL, p.Roles, p.Groups
	}
}

// TryLock implements store.Locker with one conditional upsert: the lease is
// taken when the key is free or its holder's lease expired.
func (s *Store) TryLock(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	token := rand.Text()
	now := time.Now()
	res, err := s.db.ExecContext(ctx, `INSERT INTO locks (key, token, expires_at) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at
WHERE locks.expires_at <= ?`, key, token, now.Add(ttl).UnixMilli(), now.UnixMilli())
	if err != nil {
		return "", false, wrap("lock", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return "", false, wrap("lock", err)
	}
	return token, n == 1, nil
}

// Renew implements store.Locker.
func (s *Store) Renew(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	now := time.Now()
	res, err := s.db.ExecContext(ctx, `UPDATE locks SET expires_at = ? WHERE key = ? AND token = ? AND expires_at > ?`,
		now.Add(ttl).UnixMilli(), key, token, now.UnixMilli())
	if err != nil {
		return false, wrap("renew lock", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, wrap("renew lock", err)
	}
	return n == 1, nil
}

// UseOnce implements store.Store with one conditional upsert (a key whose
// record expired is taken again); it also purges a bounded batch of expired
// keys.
func (s *Store) UseOnce(ctx context.Context, key string, expiresAt time.Time) (bool, error) {
	now := time.Now().UnixMilli()
	if _, err := s.db.ExecContext(ctx, `DELETE FROM used WHERE key IN
(SELECT key FROM used WHERE expires_at <= ? LIMIT ?)`, now, purgeBatch); err != nil {
		return false, wrap("use once: purge", err)
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO used (key, expires_at) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE used.expires_at <= ?`,
		key, millis(expiresAt), now)
	if err != nil {
		return false, wrap("use once", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, wrap("use once", err)
	}
	return n == 1, nil
}

// Unlock implements store.Locker.
func (s *Store) Unlock(ctx context.Context, key, token string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM locks WHERE key = ? AND token = ?`, key, token); err != nil {
		return wrap("unlock", err)
	}
	return nil
}

// PutCode implements store.Store; it also deletes expired codes.
func (s *Store) PutCode(ctx context.Context, c store.Code) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM codes WHERE expires_at <= ?`, time.Now().UnixMilli()); err != nil {
		return wrap("put code: purge", err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO codes (hash, subject, origin, expires_at, profile) VALUES (?, ?, ?, ?, ?)`,
		c.Hash, c.Subject, c.Origin, millis(c.ExpiresAt), c.Profile); err != nil {
		return wrap("put code", err)
	}
	return nil
}

// ConsumeCode implements store.Store with one DELETE … RETURNING, so of
// concurrent redemptions exactly one gets the row.
func (s *Store) ConsumeCode(ctx context.Context, h string) (store.Code, error) {
	c := store.Code{Hash: h}
	var exp int64
	err := s.db.QueryRowContext(ctx, `DELETE FROM codes WHERE hash = ? RETURNING subject, origin, expires_at, profile`, h).
		Scan(&c.Subject, &c.Origin, &exp, &c.Profile)
	if err != nil {
		return store.Code{}, wrap("consume code", notFound(err))
	}
	c.ExpiresAt = fromMillis(exp)
	if !c.ExpiresAt.After(time.Now()) {
		return store.Code{}, wrap("consume code", store.ErrNotFound)
	}
	return c, nil
}

// Count implements store.Store with one upsert: a counter whose window
// ended starts again.
func (s *Store) Count(ctx context.Context, key string, delta int64, window time.Duration) (int64, time.Time, error) {
	now := time.Now()
	var n, reset int64
	err := s.db.QueryRowContext(ctx, `INSERT INTO counters (key, value, reset_at) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
	value = CASE WHEN counters.reset_at <= ? THEN excluded.value ELSE counters.value + excluded.value END,
	reset_at = CASE WHEN counters.reset_at <= ? THEN excluded.reset_at ELSE counters.reset_at END
RETURNING value, reset_at`, key, delta, now.Add(window).UnixMilli(), now.UnixMilli(), now.UnixMilli()).Scan(&n, &reset)
	if err != nil {
		return 0, time.Time{}, wrap("count", err)
	}
	if n == delta && reset == now.Add(window).UnixMilli() {
		// A new window: purge a bounded batch of ended ones.
		if _, err := s.db.ExecContext(ctx, `DELETE FROM counters WHERE key IN
(SELECT key FROM counters WHERE reset_at <= ? LIMIT ?)`, now.UnixMilli(), purgeBatch); err != nil {
			return 0, time.Time{}, wrap("count: purge", err)
		}
	}
	return n, fromMillis(reset), nil
}

// ResetCount implements store.Store.
func (s *Store) ResetCount(ctx context.Context, key string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM counters WHERE key = ?`, key); err != nil {
		return wrap("reset count", err)
	}
	return nil
}

// feedPoll is how often a subscriber reads the changes table: well under
// the one second in which every instance must honour a logout.
const feedPoll = 200 * time.Millisecond

// feedKeep is how long a row stays in the changes table.
const feedKeep = time.Minute

// Publish implements store.ChangeFeed: a row in the changes table, which
// every process sharing the file polls.
func (s *Store) Publish(ctx context.Context, subject string) error {
	now := time.Now().UnixMilli()
	if _, err := s.db.ExecContext(ctx, `INSERT INTO changes (subject, at) VALUES (?, ?)`, subject, now); err != nil {
		return wrap("publish", err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM changes WHERE seq IN
(SELECT seq FROM changes WHERE at < ? ORDER BY seq LIMIT ?)`, now-feedKeep.Milliseconds(), purgeBatch); err != nil {
		return wrap("publish: purge", err)
	}
	return nil
}

// Subscribe implements store.ChangeFeed by polling the changes table every
// 200 ms from the newest row at the time of the call. A poll that fails, or
// that finds rows already purged (a subscriber that fell more than a minute
// behind), reports subject "" (drop everything).
func (s *Store) Subscribe(ctx context.Context, fn func(string)) error {
	var last int64
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM changes`).Scan(&last); err != nil {
		return wrap("subscribe", err)
	}
	go func() {
		tick := time.NewTicker(feedPoll)
		defer tick.Stop()
		failed := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			next, err := s.poll(ctx, last, fn)
			switch {
			case err != nil && ctx.Err() == nil:
				if !failed {
					fn("")
				}
				failed = true
			case err == nil:
				if failed {
					fn("") // changes may have been missed while failing
				}
				failed, last = false, next
			}
		}
	}()
	return nil
}

func (s *Store) poll(ctx context.Context, after int64, fn func(string)) (int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT seq, subject FROM changes WHERE seq > ? ORDER BY seq LIMIT 1000`, after)
	if err != nil {
		return after, err
	}
	defer rows.Close()
	first := true
	for rows.Next() {
		var seq int64
		var subject string
		if err := rows.Scan(&seq, &subject); err != nil {
			return after, err
		}
		if first && seq > after+1 && after > 0 {
			fn("") // rows in between were purged before this poll saw them
		}
		first = false
		fn(subject)
		after = seq
	}
	return after, rows.Err()
}
