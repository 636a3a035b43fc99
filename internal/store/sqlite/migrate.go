package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// migrations are the schema changes, in order; migrations[i] takes the schema
// from version i to version i+1. Append only: never edit a released entry.
//
// Times are INTEGER unix milliseconds (UTC). Tables are WITHOUT ROWID so that
// a primary-key lookup is a single B-tree search.
var migrations = []string{
	// 1: initial schema.
	`
CREATE TABLE accounts (
	username      TEXT    NOT NULL PRIMARY KEY, -- lower-cased
	password_hash TEXT    NOT NULL,
	name          TEXT    NOT NULL,
	email         TEXT    NOT NULL,
	created_at    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE sessions (
	id_hash    TEXT    NOT NULL PRIMARY KEY,
	subject    TEXT    NOT NULL,
	source     TEXT    NOT NULL,
	username   TEXT    NOT NULL,
	name       TEXT    NOT NULL,
	email      TEXT    NOT NULL,
	profile    TEXT    NOT NULL DEFAULT '{}', -- JSON: email_verified, avatar_url, roles
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_subject ON sessions (subject);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE links (
	subject      TEXT    NOT NULL PRIMARY KEY,
	user_id      TEXT    NOT NULL,
	username     TEXT    NOT NULL,
	profile_hash TEXT    NOT NULL,
	updated_at   INTEGER NOT NULL,
	chat_logged_out_at INTEGER NOT NULL DEFAULT 0, -- 0 = not logged out
	secret       BLOB                             -- sealed password (mode password)
) WITHOUT ROWID;

CREATE TABLE codes (
	hash       TEXT    NOT NULL PRIMARY KEY,
	subject    TEXT    NOT NULL,
	origin     TEXT    NOT NULL,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE locks (
	key        TEXT    NOT NULL PRIMARY KEY,
	token      TEXT    NOT NULL,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE tokens (
	subject      TEXT    NOT NULL PRIMARY KEY,
	user_id      TEXT    NOT NULL,
	ciphertext   BLOB    NOT NULL,
	minted_at    INTEGER NOT NULL,
	validated_at INTEGER NOT NULL
) WITHOUT ROWID;
`,
	// 2: the link is a security boundary (one subject per Rocket.Chat user),
	// link fields owned by profile sync, minting and provisioning, code
	// profiles, single-use keys, shared counters, the change feed. checkLinkOwners runs first: a database
	// in which one Rocket.Chat user is linked to several subjects (an
	// account takeover by adoption, possible before this version) is
	// refused with the subjects to review.
	`
ALTER TABLE links ADD COLUMN profile_synced_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE links ADD COLUMN last_mint_at      INTEGER NOT NULL DEFAULT 0;
ALTER TABLE links ADD COLUMN creating_username TEXT    NOT NULL DEFAULT '';
ALTER TABLE links ADD COLUMN creating_at       INTEGER NOT NULL DEFAULT 0;
ALTER TABLE links ADD COLUMN deactivated_at    INTEGER NOT NULL DEFAULT 0;
UPDATE links SET profile_synced_at = updated_at;
CREATE UNIQUE INDEX links_user_id ON links (user_id) WHERE user_id <> '';
ALTER TABLE codes ADD COLUMN profile BLOB;
CREATE TABLE used (
	key        TEXT    NOT NULL PRIMARY KEY,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX used_expires_at ON used (expires_at);
CREATE TABLE counters (
	key      TEXT    NOT NULL PRIMARY KEY,
	value    INTEGER NOT NULL,
	reset_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE changes (
	seq     INTEGER PRIMARY KEY AUTOINCREMENT,
	subject TEXT    NOT NULL,
	at      INTEGER NOT NULL
);
`,
	// 3: the rooms sync's record of each person (store.Link.Rooms,
	// store.EncodeRooms: JSON, '' when it never ran).
	`
ALTER TABLE links ADD COLUMN rooms TEXT NOT NULL DEFAULT '';
`,
}

// checks run before the migration of the same index (to version i+1).
var checks = map[int]func(context.Context, *sql.Tx) error{1: checkLinkOwners}

// checkLinkOwners refuses a database in which a Rocket.Chat user id is
// linked to more than one subject, naming them: rcsso cannot tell which
// person the account belongs to.
func checkLinkOwners(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT user_id, group_concat(subject, ', ') FROM links
WHERE user_id <> '' GROUP BY user_id HAVING count(*) > 1 ORDER BY user_id LIMIT 20`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var bad []string
	for rows.Next() {
		var uid, subjects string
		if err := rows.Scan(&uid, &subjects); err != nil {
			return err
		}
		bad = append(bad, fmt.Sprintf("Rocket.Chat user %s is linked to %s", uid, subjects))
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s; one Rocket.Chat user must belong to one person: find out whose account it is, "+
			"then remove the other links (sqlite3 <store.path> \"DELETE FROM links WHERE subject = '<subject>'\") and start again",
			strings.Join(bad, "; "))
	}
	return nil
}

// migrate brings the schema to len(migrations) in one transaction (BEGIN
// IMMEDIATE for file databases, so concurrent openers serialise). It refuses a
// database whose schema is newer than this binary knows.
func migrate(ctx context.Context, db *sql.DB) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, ignoreDone(tx.Rollback()))
		}
	}()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
	version    INTEGER NOT NULL PRIMARY KEY,
	applied_at INTEGER NOT NULL
)`); err != nil {
		return fmt.Errorf("create schema_version: %w", err)
	}
	var current int
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_version`).Scan(&current); err != nil {
		return fmt.Errorf("read schema_version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this binary supports (%d)", current, len(migrations))
	}
	for v := current; v < len(migrations); v++ {
		if check := checks[v]; check != nil {
			if err := check(ctx, tx); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`,
			v+1, time.Now().UnixMilli()); err != nil {
			return fmt.Errorf("record migration %d: %w", v+1, err)
		}
	}
	return tx.Commit()
}

// ignoreDone drops sql.ErrTxDone, which Rollback returns after a failed Commit.
func ignoreDone(err error) error {
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}
