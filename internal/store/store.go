// Package store defines rcsso's own state and the backends that keep it.
//
// The store holds: local website accounts (for the "local" identity source),
// website sessions (for interactive identity sources), the link from a website
// subject to its Rocket.Chat user, and the cached Rocket.Chat token per subject
// (kept encrypted by the caller; the store sees ciphertext only).
//
// Every backend passes the same conformance suite (storetest.Run).
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
)

// ErrNotFound is returned by Get* and Delete* methods when no record matches.
var ErrNotFound = errors.New("store: not found")

// ErrConflict is returned by Create* methods when a record with the same key
// already exists.
var ErrConflict = errors.New("store: already exists")

// ErrNoStore is returned (wrapped) by ReadOnlyOpener.OpenReadOnly when the
// place named holds no rcsso store: an SQLite file that does not exist or
// has no rcsso schema, a PostgreSQL database without rcsso's tables, a
// Redis key prefix under which rcsso never wrote.
var ErrNoStore = errors.New("store: no rcsso store there")

// Account is a local website account (identity source "local").
type Account struct {
	// Username is the login name, stored lower-cased; the primary key.
	Username string
	// PasswordHash is a self-describing hash (argon2id PHC string).
	PasswordHash string
	// Name and Email are the profile shown to Rocket.Chat.
	Name  string
	Email string
	// CreatedAt is the creation time (UTC).
	CreatedAt time.Time
}

// Session is a website session kept by rcsso for interactive identity sources
// (local form, OIDC). The browser holds only a random session id; the store
// keys the record by IDHash = base64url(sha256(id)), so a leaked database does
// not yield usable cookies.
type Session struct {
	// IDHash is base64url(sha256(session id)); the primary key.
	IDHash string
	// Subject is the stable website subject, e.g. "local:alice".
	Subject string
	// Source is the identity source name that created the session.
	Source string
	// Username, Name, Email are the profile captured at login.
	Username string
	Name     string
	Email    string
	// EmailVerified, AvatarURL and Roles complete the profile; Roles nil
	// means the source does not manage roles (an empty list means "none").
	EmailVerified bool
	AvatarURL     string
	Roles         []string
	// Groups are the person's groups at login (identity.Identity.Groups);
	// nil means the source does not say.
	Groups []string
	// CreatedAt and ExpiresAt bound the session (UTC).
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Link records the Rocket.Chat user that belongs to a website subject. It is
// a security boundary: a Rocket.Chat user id is linked to at most one
// subject (every backend enforces it; see ErrLinkTaken), so nothing a
// visitor sends can hand another person's chat account to them.
type Link struct {
	// Subject is the stable website subject; the primary key.
	Subject string
	// UserID is the Rocket.Chat user _id (17 chars in real servers); empty
	// while the user is not known yet (a creation in progress, mode oauth
	// before the first login).
	UserID string
	// Username is the Rocket.Chat username chosen at provisioning.
	Username string
	// ProfileHash is a digest of the profile last written to Rocket.Chat, so
	// that profile sync writes only on change.
	ProfileHash string
	// ProfileSyncedAt is when profile sync last wrote (or tried to write) the
	// profile to Rocket.Chat; zero if never. It spaces syncs out.
	ProfileSyncedAt time.Time
	// LastMintAt is when rcsso last obtained a new token for the person, by
	// any rcsso instance sharing the store; zero if never. It bounds minting
	// to one token per person per minting.min_interval.
	LastMintAt time.Time
	// CreatingUsername is the username of a Rocket.Chat user rcsso asked for
	// (users.create, a MongoDB insert) without seeing the answer yet, and
	// CreatingAt when: written before the call, cleared when the user is
	// linked. A retry after a timeout or crash may adopt that user as rcsso's
	// own creation; no other pre-existing user is adopted unless
	// provisioning.adopt allows it.
	CreatingUsername string
	CreatingAt       time.Time
	// DeactivatedAt is when rcsso last found the person's Rocket.Chat user
	// deactivated; zero if not. While it is recent rcsso answers "your chat
	// account is deactivated" without asking Rocket.Chat again.
	DeactivatedAt time.Time
	// UpdatedAt is the last write time (UTC), set by the store on every
	// UpdateLink.
	UpdatedAt time.Time
	// Secret is the sealed per-person Rocket.Chat password (minting mode
	// "password" only); nil otherwise. A link with a Secret and no UserID is
	// a creation in progress.
	Secret []byte
	// ChatLoggedOutAt is when the person logged out on the Rocket.Chat side
	// (their cached token was revoked by Rocket.Chat, not by rcsso); zero if
	// not. While set, the API URL does not log them straight back in
	// (protocol spec §1.7) until they log in on the website again or ask to.
	ChatLoggedOutAt time.Time
	// Rooms is what the rooms sync (provisioning.rooms) keeps for the
	// person: the memberships rcsso added. Zero when it never ran.
	Rooms RoomsState
}

// RoomsState is the rooms sync's record of one person (store.Link.Rooms):
// the Rocket.Chat memberships rcsso added for them, so that it leaves
// only those when a group is gone and never one the person had anyway.
// It is kept with the link (one column or field in every backend) because
// it is small (bounded by provisioning.rooms), has the link's single
// writer discipline (UpdateLink), belongs to the linked Rocket.Chat user
// and moves with the link (rcsso store migrate). A state whose UserID is
// not the link's (the person was given a new Rocket.Chat user) is void.
type RoomsState struct {
	// UserID is the Rocket.Chat user the memberships are of.
	UserID string
	// Added are the memberships rcsso added and holds, each
	// "<kind>:<id>:<name>": kind c (public channel), p (private group) or
	// t (team), the room's or team's _id, and its name in
	// provisioning.rooms. Sorted, no duplicates.
	Added []string
	// Pending are memberships rcsso asked Rocket.Chat for without seeing
	// the answer yet (written before the call, like CreatingUsername): the
	// next sync finds out whether they were made.
	Pending []string
	// Hash digests the memberships the person's groups gave when the sync
	// last brought them in step ("" until then).
	Hash string
	// SyncedAt is when a rooms sync last ran (or tried) for the person;
	// it spaces syncs out across rcsso instances.
	SyncedAt time.Time
}

// IsZero reports whether the state is empty (never synced).
func (r RoomsState) IsZero() bool {
	return r.UserID == "" && len(r.Added) == 0 && len(r.Pending) == 0 && r.Hash == "" && r.SyncedAt.IsZero()
}

// Clone returns a copy that shares no slice with r.
func (r RoomsState) Clone() RoomsState {
	r.Added, r.Pending = slices.Clone(r.Added), slices.Clone(r.Pending)
	return r
}

// roomsJSON is RoomsState's stored form.
type roomsJSON struct {
	UserID   string   `json:"u,omitempty"`
	Added    []string `json:"a,omitempty"`
	Pending  []string `json:"p,omitempty"`
	Hash     string   `json:"h,omitempty"`
	SyncedAt int64    `json:"t,omitempty"` // unix milliseconds
}

// EncodeRooms is the text SQL and Redis backends store for a RoomsState:
// compact JSON, "" for the zero state. Times keep millisecond precision.
func EncodeRooms(r RoomsState) string {
	if r.IsZero() {
		return ""
	}
	j := roomsJSON{UserID: r.UserID, Added: r.Added, Pending: r.Pending, Hash: r.Hash}
	if !r.SyncedAt.IsZero() {
		j.SyncedAt = r.SyncedAt.UnixMilli()
	}
	b, _ := json.Marshal(j) // strings and numbers only: cannot fail
	return string(b)
}

// DecodeRooms reads what EncodeRooms wrote ("" is the zero state). Times
// come back in UTC.
func DecodeRooms(s string) (RoomsState, error) {
	if s == "" {
		return RoomsState{}, nil
	}
	var j roomsJSON
	if err := json.Unmarshal([]byte(s), &j); err != nil {
		return RoomsState{}, fmt.Errorf("store: the link's rooms record is not readable: %w", err)
	}
	r := RoomsState{UserID: j.UserID, Added: j.Added, Pending: j.Pending, Hash: j.Hash}
	if j.SyncedAt != 0 {
		r.SyncedAt = time.UnixMilli(j.SyncedAt).UTC()
	}
	return r, nil
}

// Token is a cached Rocket.Chat token for one subject.
type Token struct {
	// Subject is the stable website subject; the primary key.
	Subject string
	// UserID is the Rocket.Chat user _id the token belongs to.
	UserID string
	// Ciphertext is the encrypted token (the store never sees the plain token).
	Ciphertext []byte
	// MintedAt is when rcsso obtained the token; ValidatedAt when Rocket.Chat
	// last confirmed it (UTC).
	MintedAt    time.Time
	ValidatedAt time.Time
}

// Code is a single-use code that hands a person's chat token to a host page
// on another site (issue: host push flow). The store keeps only
// Hash = base64url(sha256(code)).
type Code struct {
	Hash string
	// Subject is the person the code is for.
	Subject string
	// Origin is the exact host-page origin allowed to redeem it.
	Origin string
	// ExpiresAt bounds its life (UTC; seconds, not minutes).
	ExpiresAt time.Time
	// Profile is the person's identity as the website's back end gave it
	// (opaque to the store; JSON written by the server), so that redeeming
	// the code acts for the whole person, not a bare subject.
	Profile []byte
}

// ErrLinkTaken is returned (wrapped in a *LinkTakenError, which also
// wraps ErrConflict) when an UpdateLink would link a Rocket.Chat user id
// that is already linked to another subject.
var ErrLinkTaken = errors.New("store: the Rocket.Chat user is linked to another subject")

// LinkTakenError names the subject that holds a Rocket.Chat user id.
type LinkTakenError struct {
	UserID string
	// Holder is the subject the user id is linked to.
	Holder string
}

func (e *LinkTakenError) Error() string {
	return "store: Rocket.Chat user " + e.UserID + " is already linked to subject " + e.Holder
}

// Is makes errors.Is match ErrLinkTaken and ErrConflict.
func (e *LinkTakenError) Is(target error) bool {
	return target == ErrLinkTaken || target == ErrConflict
}

// Store is rcsso's state. All methods are safe for concurrent use and honour
// ctx cancellation: a call made with a done ctx fails with an error wrapping
// ctx.Err(). Times are stored with at least millisecond precision and returned
// in UTC (a zero time round-trips as a zero time). Errors wrap ErrNotFound and
// ErrConflict, so test them with errors.Is. Records are values: a backend
// keeps no reference to a caller's slices (e.g. Token.Ciphertext) and hands
// out none of its own. Keys other than Account.Username are case-sensitive.
type Store interface {
	// CreateAccount inserts a local account, lower-casing a.Username first;
	// ErrConflict if the username exists (compared case-insensitively).
	CreateAccount(ctx context.Context, a Account) error
	// GetAccount returns the account for username (case-insensitive); ErrNotFound.
	GetAccount(ctx context.Context, username string) (Account, error)
	// ListAccounts returns all accounts ordered by (lower-cased) username,
	// byte-wise ascending; an empty store yields an empty slice.
	ListAccounts(ctx context.Context) ([]Account, error)
	// DeleteAccount removes an account (username is case-insensitive);
	// ErrNotFound if absent.
	DeleteAccount(ctx context.Context, username string) error

	// PutSession inserts or replaces a session. Backends may use the call to
	// purge a bounded batch of expired sessions.
	PutSession(ctx context.Context, s Session) error
	// GetSession returns an unexpired session by IDHash; ErrNotFound if absent
	// or expired (ExpiresAt <= now).
	GetSession(ctx context.Context, idHash string) (Session, error)
	// DeleteSession removes one session; nil if absent.
	DeleteSession(ctx context.Context, idHash string) error
	// DeleteSessionsBySubject removes every session of a subject and returns
	// how many were removed. The count may include expired sessions that had
	// not been purged yet.
	DeleteSessionsBySubject(ctx context.Context, subject string) (int, error)

	// GetLink returns the link for subject; ErrNotFound.
	GetLink(ctx context.Context, subject string) (Link, error)
	// LinkByUserID returns the link holding a Rocket.Chat user id;
	// ErrNotFound. userID must not be empty.
	LinkByUserID(ctx context.Context, userID string) (Link, error)
	// UpdateLink is the only way to write a link: it reads subject's link
	// (a Link with only Subject set when there is none), calls update on it
	// and stores the result, atomically with respect to every other
	// UpdateLink and DeleteLink on the same store, across processes. update
	// may run more than once (a backend may retry after a conflict) and
	// must not block; it must not change Subject. When update returns an
	// error nothing is written and that error is returned as is. Writing a
	// UserID that another subject holds fails with a *LinkTakenError
	// (errors.Is ErrLinkTaken and ErrConflict) and writes nothing. The
	// store sets UpdatedAt to the time of the write. It returns the link as
	// stored.
	UpdateLink(ctx context.Context, subject string, update func(*Link) error) (Link, error)
	// DeleteLink removes the link of subject; nil if absent.
	DeleteLink(ctx context.Context, subject string) error

	// GetToken returns the cached token for subject; ErrNotFound.
	GetToken(ctx context.Context, subject string) (Token, error)
	// PutToken inserts or replaces the cached token for t.Subject.
	PutToken(ctx context.Context, t Token) error
	// DeleteToken removes the cached token; nil if absent.
	DeleteToken(ctx context.Context, subject string) error

	// PutCode stores a single-use code.
	PutCode(ctx context.Context, c Code) error
	// ConsumeCode atomically removes and returns the code with hash h;
	// ErrNotFound if absent, already consumed or expired. Of concurrent
	// calls for one code, exactly one succeeds.
	ConsumeCode(ctx context.Context, h string) (Code, error)

	// UseOnce records key as used until expiresAt and reports whether this
	// call was its first use; a key seen before and not yet expired gives
	// false. Of concurrent calls for one key exactly one gets true. It
	// backs every single-use value that is not a Code: webhook MACs, OAuth
	// authorization codes, OIDC state, JWT ids. Backends purge expired keys.
	UseOnce(ctx context.Context, key string, expiresAt time.Time) (bool, error)

	// Count adds delta to the fixed-window counter key and returns its new
	// value and when its window ends. A counter that does not exist, or
	// whose window ended, starts at 0 with a window of window from now.
	// Concurrent calls never lose an increment. It backs limits shared by
	// every rcsso on the store (failed logins, the Rocket.Chat call budget).
	Count(ctx context.Context, key string, delta int64, window time.Duration) (int64, time.Time, error)
	// ResetCount deletes the counter key; nil if absent.
	ResetCount(ctx context.Context, key string) error

	// Ping reports whether the backend answers.
	Ping(ctx context.Context) error
	// Close releases resources.
	Close() error
}

// ChangeFeed is an optional Store capability: a broadcast channel shared
// by every rcsso on the store, which keeps each instance's in-process cache
// coherent (a logout on one instance is honoured by the others within a
// second). Delivery is at most once and unordered across subjects; a
// subscriber that missed messages (a reconnect) is told so by a call with
// subject "" and must drop its whole cache.
type ChangeFeed interface {
	// Publish announces that subject's cached state (link, token) changed.
	Publish(ctx context.Context, subject string) error
	// Subscribe calls fn for every subject published on the store, by any
	// instance including this one, until ctx is done. fn must not block.
	// It returns once the subscription is established; delivery goes on in
	// the background.
	Subscribe(ctx context.Context, fn func(subject string)) error
}

// Locker is an optional Store capability: a short lease on a key shared by
// every rcsso process using the same store, so that two processes do not
// create the same person's Rocket.Chat user or mint their token twice.
type Locker interface {
	// TryLock takes the lease on key for ttl if nobody holds an unexpired
	// one. It returns a token to pass to Unlock and whether it got the lease.
	TryLock(ctx context.Context, key string, ttl time.Duration) (token string, ok bool, err error)
	// Renew extends the lease to ttl from now if token still holds it, and
	// reports whether it does.
	Renew(ctx context.Context, key, token string, ttl time.Duration) (bool, error)
	// Unlock releases the lease if token still holds it.
	Unlock(ctx context.Context, key, token string) error
}

// Visitor receives the records an Exporter enumerates: one function per
// record kind, nil to skip that kind. An error a function returns stops
// the enumeration and Export returns it as is (unwrapped).
type Visitor struct {
	Account func(Account) error
	Session func(Session) error
	Link    func(Link) error
	Token   func(Token) error
}

// Exporter is an optional Store capability: enumerating every long-lived
// record, to move a deployment to another store (rcsso store migrate).
// Codes, single-use keys, counters, leases and the change feed are
// short-lived and are not enumerated. Importing needs no capability: the
// records go through CreateAccount, PutSession, UpdateLink and PutToken,
// which keep every field but Link.UpdatedAt (the time of the copy).
type Exporter interface {
	// Export calls v's functions for every account, every unexpired
	// session (ExpiresAt > now), every link and every cached token: kind
	// by kind in that order, each record once, in no promised order
	// within a kind. Records are as Get* returns them (Link.UpdatedAt
	// as stored, Token.Ciphertext the stored bytes). SQL backends read
	// one snapshot (a read-only transaction); on Redis a record written
	// during Export may or may not be seen. v's functions must not call
	// the same store (a backend may hold a transaction or a lock across
	// the calls). A done ctx stops Export with an error wrapping
	// ctx.Err(). SQL backends hold one record at a time; Redis also the
	// keys seen (to yield each record once) and all accounts (one hash);
	// memory a copy of one kind at a time.
	Export(ctx context.Context, v Visitor) error
}

// Config is a store type's typed configuration: the keys under store:
// that its package defines (sqlite: path; postgres: postgres.url, …), decoded
// by config.Block.Decode. Each store package exports one, and rcsso's app
// package lists them in one map (store.type → Config), so adding a store
// is one package and one map row.
type Config interface {
	// Validate checks the decoded keys; its errors name the full key
	// (store.path, store.postgres.url) and how to fix it.
	Validate() error
	// Open opens the store, creating or migrating its schema. ctx bounds
	// opening only.
	Open(ctx context.Context, log *slog.Logger) (Store, error)
	// Shared reports whether rcsso instances on several hosts may use the
	// store at once. They must then share store.encryption_key, which rcsso
	// cannot generate for them: start-up refuses a shared store without it.
	Shared() bool
}

// ReadOnlyOpener is an optional Config capability: opening an existing
// store to read it, as rcsso store migrate does with its source, without
// writing anything to it: no file or schema is created or upgraded, no
// key prefix claimed. The store returned implements Exporter; the backend
// refuses writes where it can (SQLite: a read-only connection;
// PostgreSQL: read-only transactions). A store whose schema is older or
// newer than this rcsso's is refused, naming the fix. Errors wrap
// ErrNoStore when there is no rcsso store there.
type ReadOnlyOpener interface {
	OpenReadOnly(ctx context.Context, log *slog.Logger) (Store, error)
}

// KeyKeeper is an optional Config capability: a store on one host that can
// keep a generated encryption key next to its data (SQLite: <path>.key),
// so that store.encryption_key may be left empty.
type KeyKeeper interface {
	// KeyPath is the file for the generated key.
	KeyPath() string
}
