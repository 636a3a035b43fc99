-- rcsso store schema, version 1. Applied by goose (github.com/pressly/goose)
-- in one transaction; never edit a released migration, add the next file.
--
-- Keys are COLLATE "C" so that equality and order are byte-wise whatever the
-- database's locale. Keys that rcsso builds itself and never reads back
-- (single-use values, counters, leases) are bytea: they may hold any bytes,
-- NUL included. Times are timestamptz (microseconds, UTC on the wire); NULL
-- in an optional column means "never" (a zero Go time).

-- +goose Up
CREATE TABLE accounts (
	username      text COLLATE "C" PRIMARY KEY, -- lower-cased
	password_hash text        NOT NULL,
	name          text        NOT NULL,
	email         text        NOT NULL,
	created_at    timestamptz NOT NULL
);

CREATE TABLE sessions (
	id_hash        text COLLATE "C" PRIMARY KEY, -- base64url(sha256(session id))
	subject        text COLLATE "C" NOT NULL,
	source         text        NOT NULL,
	username       text        NOT NULL,
	name           text        NOT NULL,
	email          text        NOT NULL,
	email_verified boolean     NOT NULL,
	avatar_url     text        NOT NULL,
	roles          text[],                      -- NULL: the source does not manage roles
	created_at     timestamptz NOT NULL,
	expires_at     timestamptz NOT NULL
);
CREATE INDEX sessions_subject ON sessions (subject);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE links (
	subject           text COLLATE "C" PRIMARY KEY,
	user_id           text COLLATE "C" NOT NULL, -- '' while the Rocket.Chat user is not known
	username          text        NOT NULL,
	profile_hash      text        NOT NULL,
	profile_synced_at timestamptz,
	last_mint_at      timestamptz,
	creating_username text        NOT NULL,
	creating_at       timestamptz,
	deactivated_at    timestamptz,
	chat_logged_out_at timestamptz,
	secret            bytea,                     -- sealed password (minting mode password)
	updated_at        timestamptz NOT NULL
);
-- One subject per Rocket.Chat user: the account-takeover boundary.
CREATE UNIQUE INDEX links_user_id ON links (user_id) WHERE user_id <> '';

CREATE TABLE tokens (
	subject      text COLLATE "C" PRIMARY KEY,
	user_id      text        NOT NULL,
	ciphertext   bytea       NOT NULL,
	minted_at    timestamptz NOT NULL,
	validated_at timestamptz NOT NULL
);

CREATE TABLE codes (
	hash       text COLLATE "C" PRIMARY KEY, -- base64url(sha256(code))
	subject    text        NOT NULL,
	origin     text        NOT NULL,
	expires_at timestamptz NOT NULL,
	profile    bytea
);
CREATE INDEX codes_expires_at ON codes (expires_at);

CREATE TABLE used (
	key        bytea PRIMARY KEY,
	expires_at timestamptz NOT NULL
);
CREATE INDEX used_expires_at ON used (expires_at);

CREATE TABLE counters (
	key      bytea PRIMARY KEY,
	value    bigint      NOT NULL,
	reset_at timestamptz NOT NULL
);
CREATE INDEX counters_reset_at ON counters (reset_at);

CREATE TABLE leases (
	key        bytea PRIMARY KEY,
	token      text        NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE INDEX leases_expires_at ON leases (expires_at);
