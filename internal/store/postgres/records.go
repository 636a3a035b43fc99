package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rcsso/rcsso/internal/store"
)

// purgeBatch bounds how many expired rows one write deletes.
const purgeBatch = 100

// purge is a data-modifying WITH clause deleting up to purgeBatch rows of
// table whose column at has passed, other than the row keyed by $1 (which
// the statement itself writes), skipping rows another purger holds.
func purge(table, key, at string) string {
	return fmt.Sprintf(`WITH purge AS (DELETE FROM %[1]s WHERE %[2]s IN (SELECT %[2]s FROM %[1]s
WHERE %[3]s <= now() AND %[2]s <> $1 LIMIT %[4]d FOR UPDATE SKIP LOCKED)) `, table, key, at, purgeBatch)
}

// CreateAccount implements store.Store; ErrConflict if the username exists.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO accounts (username, password_hash, name, email, created_at)
VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING`,
		strings.ToLower(a.Username), a.PasswordHash, a.Name, a.Email, a.CreatedAt)
	if err != nil {
		return s.wrap("create account", err)
	}
	if tag.RowsAffected() == 0 {
		return s.wrap("create account", store.ErrConflict)
	}
	return nil
}

const accountColumns = `username, password_hash, name, email, created_at`

func scanAccount(row pgx.Row) (store.Account, error) {
	var a store.Account
	err := row.Scan(&a.Username, &a.PasswordHash, &a.Name, &a.Email, &a.CreatedAt)
	a.CreatedAt = a.CreatedAt.UTC()
	return a, err
}

// GetAccount implements store.Store; ErrNotFound if absent.
func (s *Store) GetAccount(ctx context.Context, username string) (store.Account, error) {
	username = strings.ToLower(username)
	if !textOK(username) {
		return store.Account{}, s.wrap("get account", ctxOr(ctx, store.ErrNotFound))
	}
	a, err := scanAccount(s.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts WHERE username = $1`, username))
	if err != nil {
		return store.Account{}, s.wrap("get account", err)
	}
	return a, nil
}

// ListAccounts implements store.Store: all accounts ordered by username,
// byte-wise.
func (s *Store) ListAccounts(ctx context.Context) ([]store.Account, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+accountColumns+` FROM accounts ORDER BY username`)
	if err != nil {
		return nil, s.wrap("list accounts", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Account, error) { return scanAccount(r) })
	if err != nil {
		return nil, s.wrap("list accounts", err)
	}
	if out == nil {
		out = []store.Account{}
	}
	return out, nil
}

// DeleteAccount implements store.Store; ErrNotFound if absent.
func (s *Store) DeleteAccount(ctx context.Context, username string) error {
	username = strings.ToLower(username)
	if !textOK(username) {
		return s.wrap("delete account", ctxOr(ctx, store.ErrNotFound))
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM accounts WHERE username = $1`, username)
	if err != nil {
		return s.wrap("delete account", err)
	}
	if tag.RowsAffected() == 0 {
		return s.wrap("delete account", store.ErrNotFound)
	}
	return nil
}

// ctxOr is ctx's error if it is done, else err: a call that answers
// without a round trip still honours a done context.
func ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// PutSession implements store.Store (an upsert). In the same statement it
// deletes up to 100 expired sessions (see the package comment).
func (s *Store) PutSession(ctx context.Context, sess store.Session) error {
	if _, err := s.pool.Exec(ctx, purge("sessions", "id_hash", "expires_at")+`INSERT INTO sessions
(id_hash, subject, source, username, name, email, email_verified, avatar_url, roles, groups, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (id_hash) DO UPDATE SET
	subject = excluded.subject, source = excluded.source, username = excluded.username,
	name = excluded.name, email = excluded.email, email_verified = excluded.email_verified,
	avatar_url = excluded.avatar_url, roles = excluded.roles, groups = excluded.groups,
	created_at = excluded.created_at, expires_at = excluded.expires_at`,
		sess.IDHash, sess.Subject, sess.Source, sess.Username, sess.Name, sess.Email, sess.EmailVerified,
		sess.AvatarURL, sess.Roles, sess.Groups, sess.CreatedAt, sess.ExpiresAt); err != nil {
		return s.wrap("put session", err)
	}
	return nil
}

// getSessionSQL is the hot-path session lookup: one primary-key probe.
const getSessionSQL = `SELECT subject, source, username, name, email, email_verified, avatar_url, roles, groups, created_at, expires_at
FROM sessions WHERE id_hash = $1 AND expires_at > now()`

// GetSession implements store.Store; ErrNotFound if absent or expired
// (by the server's clock).
func (s *Store) GetSession(ctx context.Context, idHash string) (store.Session, error) {
	if !textOK(idHash) {
		return store.Session{}, s.wrap("get session", ctxOr(ctx, store.ErrNotFound))
	}
	sess := store.Session{IDHash: idHash}
	err := s.pool.QueryRow(ctx, getSessionSQL, idHash).Scan(&sess.Subject, &sess.Source, &sess.Username, &sess.Name,
		&sess.Email, &sess.EmailVerified, &sess.AvatarURL, &sess.Roles, &sess.Groups, &sess.CreatedAt, &sess.ExpiresAt)
	if err != nil {
		return store.Session{}, s.wrap("get session", err)
	}
	sess.CreatedAt, sess.ExpiresAt = sess.CreatedAt.UTC(), sess.ExpiresAt.UTC()
	return sess, nil
}

// DeleteSession implements store.Store; nil if absent.
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	if !textOK(idHash) {
		return ctxErr(ctx, s, "delete session")
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id_hash = $1`, idHash); err != nil {
		return s.wrap("delete session", err)
	}
	return nil
}

// ctxErr is the wrapped ctx error if ctx is done, else nil.
func ctxErr(ctx context.Context, s *Store, op string) error {
	if err := ctx.Err(); err != nil {
		return s.wrap(op, err)
	}
	return nil
}

// DeleteSessionsBySubject implements store.Store.
func (s *Store) DeleteSessionsBySubject(ctx context.Context, subject string) (int, error) {
	if !textOK(subject) {
		return 0, ctxErr(ctx, s, "delete sessions by subject")
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE subject = $1`, subject)
	if err != nil {
		return 0, s.wrap("delete sessions by subject", err)
	}
	return int(tag.RowsAffected()), nil
}

const linkColumns = `subject, user_id, username, profile_hash, profile_synced_at, last_mint_at,
creating_username, creating_at, deactivated_at, chat_logged_out_at, secret, rooms, updated_at`

func scanLink(row pgx.Row) (store.Link, error) {
	var l store.Link
	var synced, minted, creating, deactivated, loggedOut *time.Time
	var rooms string
	err := row.Scan(&l.Subject, &l.UserID, &l.Username, &l.ProfileHash, &synced, &minted,
		&l.CreatingUsername, &creating, &deactivated, &loggedOut, &l.Secret, &rooms, &l.UpdatedAt)
	l.ProfileSyncedAt, l.LastMintAt, l.CreatingAt = fromOpt(synced), fromOpt(minted), fromOpt(creating)
	l.DeactivatedAt, l.ChatLoggedOutAt, l.UpdatedAt = fromOpt(deactivated), fromOpt(loggedOut), l.UpdatedAt.UTC()
	if err == nil {
		l.Rooms, err = store.DecodeRooms(rooms)
	}
	return l, err
}

// GetLink implements store.Store; ErrNotFound if absent.
func (s *Store) GetLink(ctx context.Context, subject string) (store.Link, error) {
	if !textOK(subject) {
		return store.Link{}, s.wrap("get link", ctxOr(ctx, store.ErrNotFound))
	}
	l, err := scanLink(s.pool.QueryRow(ctx, `SELECT `+linkColumns+` FROM links WHERE subject = $1`, subject))
	if err != nil {
		return store.Link{}, s.wrap("get link", err)
	}
	return l, nil
}

// LinkByUserID implements store.Store; ErrNotFound if absent (always for
// an empty userID).
func (s *Store) LinkByUserID(ctx context.Context, userID string) (store.Link, error) {
	if userID == "" || !textOK(userID) {
		return store.Link{}, s.wrap("link by user id", ctxOr(ctx, store.ErrNotFound))
	}
	l, err := scanLink(s.pool.QueryRow(ctx, `SELECT `+linkColumns+` FROM links WHERE user_id = $1`, userID))
	if err != nil {
		return store.Link{}, s.wrap("link by user id", err)
	}
	return l, nil
}

// linkAttempts bounds how often UpdateLink starts again after a conflict
// with a concurrent writer (a creation of the same subject, a claim of the
// same user id that then moved, a deadlock or serialization failure).
const linkAttempts = 10

// UpdateLink implements store.Store in one transaction: the link's row is
// read with SELECT … FOR UPDATE, so concurrent updates and deletes of it,
// from any instance, wait for this one. When there is no row yet,
// concurrent creators race on the primary key; the losers start again (and
// run update again) once the winner committed. The unique index
// links_user_id enforces one subject per Rocket.Chat user; a write it
// refuses yields *store.LinkTakenError naming the holder. UpdatedAt is the
// server's time of the write.
func (s *Store) UpdateLink(ctx context.Context, subject string, update func(*store.Link) error) (store.Link, error) {
	for attempt := 1; ; attempt++ {
		l, again, err := s.updateLink(ctx, subject, update)
		if !again {
			return l, err
		}
		if attempt == linkAttempts {
			return store.Link{}, fmt.Errorf("postgres: update link: still conflicting with concurrent writers after %d attempts: %w", attempt, err)
		}
	}
}

// updateLink is one attempt of UpdateLink; again reports a conflict after
// which a new attempt may succeed.
func (s *Store) updateLink(ctx context.Context, subject string, update func(*store.Link) error) (_ store.Link, again bool, err error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return store.Link{}, false, s.wrap("update link", err)
	}
	// After Commit this is a no-op; after a failure it ends the transaction
	// (or pgx closes the connection if it cannot), even when ctx is done.
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()

	l, err := scanLink(tx.QueryRow(ctx, `SELECT `+linkColumns+` FROM links WHERE subject = $1 FOR UPDATE`, subject))
	exists := err == nil
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		l = store.Link{Subject: subject}
	case err != nil:
		return store.Link{}, false, s.wrap("update link", err)
	}
	if err := update(&l); err != nil {
		return store.Link{}, false, err
	}
	l.Subject = subject
	if l.UserID != "" {
		var holder string
		err := tx.QueryRow(ctx, `SELECT subject FROM links WHERE user_id = $1 AND subject <> $2`, l.UserID, subject).Scan(&holder)
		switch {
		case err == nil:
			return store.Link{}, false, s.wrap("update link", &store.LinkTakenError{UserID: l.UserID, Holder: holder})
		case !errors.Is(err, pgx.ErrNoRows):
			return store.Link{}, false, s.wrap("update link", err)
		}
	}
	if !l.Rooms.SyncedAt.IsZero() {
		l.Rooms.SyncedAt = l.Rooms.SyncedAt.UTC().Truncate(time.Millisecond) // as EncodeRooms keeps it
	}
	args := []any{subject, l.UserID, l.Username, l.ProfileHash, opt(l.ProfileSyncedAt), opt(l.LastMintAt),
		l.CreatingUsername, opt(l.CreatingAt), opt(l.DeactivatedAt), opt(l.ChatLoggedOutAt), l.Secret, store.EncodeRooms(l.Rooms)}
	write := `INSERT INTO links (` + linkColumns + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now())
RETURNING updated_at`
	if exists {
		write = `UPDATE links SET user_id = $2, username = $3, profile_hash = $4, profile_synced_at = $5,
	last_mint_at = $6, creating_username = $7, creating_at = $8, deactivated_at = $9,
	chat_logged_out_at = $10, secret = $11, rooms = $12, updated_at = now()
WHERE subject = $1 RETURNING updated_at`
	}
	err = tx.QueryRow(ctx, write, args...).Scan(&l.UpdatedAt)
	if err == nil {
		err = tx.Commit(ctx)
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		l.UpdatedAt = l.UpdatedAt.UTC()
		return l, false, nil
	case errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "links_user_id":
		// Another subject claimed the user id after our check; name it
		// (outside this failed transaction), or start again if it let go.
		var holder string
		herr := s.pool.QueryRow(ctx, `SELECT subject FROM links WHERE user_id = $1 AND subject <> $2`, l.UserID, subject).Scan(&holder)
		if herr == nil {
			return store.Link{}, false, s.wrap("update link", &store.LinkTakenError{UserID: l.UserID, Holder: holder})
		}
		return store.Link{}, errors.Is(herr, pgx.ErrNoRows), s.wrap("update link", err)
	case errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "40001" || pgErr.Code == "40P01"):
		// The subject was created concurrently, or a deadlock or
		// serialization failure: start again.
		return store.Link{}, true, s.wrap("update link", err)
	default:
		return store.Link{}, false, s.wrap("update link", err)
	}
}

// DeleteLink implements store.Store; nil if absent. It waits for an
// UpdateLink of the same subject in progress.
func (s *Store) DeleteLink(ctx context.Context, subject string) error {
	if !textOK(subject) {
		return ctxErr(ctx, s, "delete link")
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM links WHERE subject = $1`, subject); err != nil {
		return s.wrap("delete link", err)
	}
	return nil
}

// getTokenSQL is the hot-path token lookup: one primary-key probe.
const getTokenSQL = `SELECT user_id, ciphertext, minted_at, validated_at FROM tokens WHERE subject = $1`

// GetToken implements store.Store; ErrNotFound if absent.
func (s *Store) GetToken(ctx context.Context, subject string) (store.Token, error) {
	if !textOK(subject) {
		return store.Token{}, s.wrap("get token", ctxOr(ctx, store.ErrNotFound))
	}
	t := store.Token{Subject: subject}
	err := s.pool.QueryRow(ctx, getTokenSQL, subject).Scan(&t.UserID, &t.Ciphertext, &t.MintedAt, &t.ValidatedAt)
	if err != nil {
		return store.Token{}, s.wrap("get token", err)
	}
	t.MintedAt, t.ValidatedAt = t.MintedAt.UTC(), t.ValidatedAt.UTC()
	return t, nil
}

// PutToken implements store.Store (an upsert).
func (s *Store) PutToken(ctx context.Context, t store.Token) error {
	ct := t.Ciphertext
	if ct == nil {
		ct = []byte{} // pgx sends nil as NULL
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO tokens (subject, user_id, ciphertext, minted_at, validated_at)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (subject) DO UPDATE SET
	user_id = excluded.user_id, ciphertext = excluded.ciphertext,
	minted_at = excluded.minted_at, validated_at = excluded.validated_at`,
		t.Subject, t.UserID, ct, t.MintedAt, t.ValidatedAt); err != nil {
		return s.wrap("put token", err)
	}
	return nil
}

// DeleteToken implements store.Store; nil if absent.
func (s *Store) DeleteToken(ctx context.Context, subject string) error {
	if !textOK(subject) {
		return ctxErr(ctx, s, "delete token")
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM tokens WHERE subject = $1`, subject); err != nil {
		return s.wrap("delete token", err)
	}
	return nil
}

// PutCode implements store.Store; ErrConflict if the hash exists. In the
// same statement it deletes up to 100 expired codes.
func (s *Store) PutCode(ctx context.Context, c store.Code) error {
	if _, err := s.pool.Exec(ctx, purge("codes", "hash", "expires_at")+`INSERT INTO codes
(hash, subject, origin, expires_at, profile) VALUES ($1, $2, $3, $4, $5)`,
		c.Hash, c.Subject, c.Origin, c.ExpiresAt, c.Profile); err != nil {
		return s.wrap("put code", err)
	}
	return nil
}

// ConsumeCode implements store.Store with one DELETE … RETURNING, so of
// concurrent redemptions exactly one gets the row; an expired code is
// deleted and ErrNotFound.
func (s *Store) ConsumeCode(ctx context.Context, h string) (store.Code, error) {
	if !textOK(h) {
		return store.Code{}, s.wrap("consume code", ctxOr(ctx, store.ErrNotFound))
	}
	c := store.Code{Hash: h}
	var live bool
	err := s.pool.QueryRow(ctx, `DELETE FROM codes WHERE hash = $1
RETURNING subject, origin, expires_at, profile, expires_at > now()`, h).Scan(&c.Subject, &c.Origin, &c.ExpiresAt, &c.Profile, &live)
	if err != nil {
		return store.Code{}, s.wrap("consume code", err)
	}
	if !live {
		return store.Code{}, s.wrap("consume code", store.ErrNotFound)
	}
	c.ExpiresAt = c.ExpiresAt.UTC()
	return c, nil
}

// Export implements store.Exporter in one read-only REPEATABLE READ
// transaction (a snapshot of the whole store), each kind ordered by key.
// Sessions are judged unexpired by the server's clock at its start.
func (s *Store) Export(ctx context.Context, v store.Visitor) error {
	if err := ctx.Err(); err != nil {
		return s.wrap("export", err)
	}
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return s.wrap("export", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	if v.Account != nil {
		err := exportRows(ctx, s, tx, `SELECT `+accountColumns+` FROM accounts ORDER BY username`,
			func(r pgx.Rows) (store.Account, error) { return scanAccount(r) }, v.Account)
		if err != nil {
			return err
		}
	}
	if v.Session != nil {
		err := exportRows(ctx, s, tx, `SELECT id_hash, subject, source, username, name, email, email_verified, avatar_url, roles, groups,
created_at, expires_at FROM sessions WHERE expires_at > now() ORDER BY id_hash`,
			func(r pgx.Rows) (store.Session, error) {
				var sess store.Session
				err := r.Scan(&sess.IDHash, &sess.Subject, &sess.Source, &sess.Username, &sess.Name, &sess.Email,
					&sess.EmailVerified, &sess.AvatarURL, &sess.Roles, &sess.Groups, &sess.CreatedAt, &sess.ExpiresAt)
				sess.CreatedAt, sess.ExpiresAt = sess.CreatedAt.UTC(), sess.ExpiresAt.UTC()
				return sess, err
			}, v.Session)
		if err != nil {
			return err
		}
	}
	if v.Link != nil {
		err := exportRows(ctx, s, tx, `SELECT `+linkColumns+` FROM links ORDER BY subject`,
			func(r pgx.Rows) (store.Link, error) { return scanLink(r) }, v.Link)
		if err != nil {
			return err
		}
	}
	if v.Token != nil {
		err := exportRows(ctx, s, tx, `SELECT subject, user_id, ciphertext, minted_at, validated_at FROM tokens ORDER BY subject`,
			func(r pgx.Rows) (store.Token, error) {
				var t store.Token
				err := r.Scan(&t.Subject, &t.UserID, &t.Ciphertext, &t.MintedAt, &t.ValidatedAt)
				t.MintedAt, t.ValidatedAt = t.MintedAt.UTC(), t.ValidatedAt.UTC()
				return t, err
			}, v.Token)
		if err != nil {
			return err
		}
	}
	return nil
}

// exportRows runs query in tx and calls fn on each row scanned, until fn
// fails (its error is returned as is).
func exportRows[R any](ctx context.Context, s *Store, tx pgx.Tx, query string, scan func(pgx.Rows) (R, error), fn func(R) error) error {
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return s.wrap("export", err)
	}
	defer rows.Close()
	for rows.Next() {
		rec, err := scan(rows)
		if err != nil {
			return s.wrap("export", err)
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.wrap("export", err)
	}
	return nil
}
