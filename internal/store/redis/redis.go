// Package redis is a store.Store on Redis 7.0 or later, or Valkey 7.2 or
// later (a standalone server), through go-redis v9. Several
// rcsso instances share one database: every read-modify-write is one
// atomic server-side step (a command, MULTI/EXEC or a Lua script), locks are
// leases with a fencing token, and the change feed is a pub/sub channel.
//
// # Key layout
//
// Every key starts with the key prefix P (Config.KeyPrefix, default
// "rcsso:"), so "P session:<IDHash>" below is e.g. "rcsso:session:<IDHash>";
// the part after the kind is the record's key, byte for byte.
// Times are decimal unix milliseconds, UTC; a zero time is an empty field.
//
//	P layout                      string "1": the data layout below; Open refuses another
//	P accounts                    hash: lower-cased username → form-encoded
//	                              password_hash, name, email, created_at
//	P session:<IDHash>            hash: subject source username name email
//	                              email_verified avatar_url roles created_at
//	                              expires_at; PEXPIREAT expires_at
//	P sessions-of:<subject>       set of IDHash; expires with its last session
//	P link:<subject>              hash: user_id username profile_hash
//	                              profile_synced_at last_mint_at creating_username
//	                              creating_at deactivated_at updated_at
//	                              chat_logged_out_at secret rooms (the rooms
//	                              sync's record, store.EncodeRooms), and rev
//	                              (a random revision, new on every write)
//	P link-user:<user id>         string: the subject whose link holds the user id
//	P token:<subject>             hash: user_id ciphertext minted_at validated_at
//	P code:<hash>                 string, form-encoded subject origin expires_at
//	                              profile; PEXPIREAT expires_at
//	P used:<key>                  string "1" (UseOnce); PEXPIREAT expiresAt
//	P count:<key>                 integer (Count); PEXPIRE window, set once
//	P lock:<key>                  string: the lease's token; PEXPIRE ttl
//	P changes                     pub/sub channel of the change feed
//
// # Expiry
//
// Redis deletes sessions, codes, used keys, counters and leases itself when
// their time ends (PEXPIREAT/PEXPIRE), and reads check the time again, so an
// expired record is never returned. A session's entry in sessions-of is
// dropped by DeleteSessionsBySubject, or by a later PutSession of the same
// subject that finds it gone (up to 10 entries checked per call); the set
// itself expires with its last session. Counters and leases are measured on
// the server's clock, sessions, codes and used keys on rcsso's: keep clocks
// in step (NTP).
//
// # Atomicity
//
// UpdateLink reads the link (one HGETALL), runs the updater, and writes with
// a Lua script that checks the revision it read is still the stored one,
// enforces one subject per Rocket.Chat user id through link-user, and
// writes link and index together; on a lost race it reads again and runs
// the updater again (at most 100 times). ConsumeCode is GETDEL; UseOnce is
// SET NX PXAT; Count is INCRBY, PEXPIRE NX and PEXPIRETIME in one MULTI;
// TryLock is SET NX PX with a random token, Renew and Unlock are scripts
// that act only while the stored token is the caller's (fencing: a holder
// whose lease ran out cannot touch its successor's).
//
// Commands are sent once, never retried by the client (see Config.Open):
// a command cut off by a lost connection fails with an error even when the
// server applied it. Every write acknowledged without an error is applied;
// with appendfsync always on the server it also survives a server restart.
//
// # Change feed
//
// Publish is PUBLISH on P changes. Each Subscribe holds its own
// subscription connection and sends PING after a second without traffic; a
// connection still silent after three seconds counts as lost (the server
// or the network went away without closing it) and is replaced. When the
// connection fails, and again when a new subscription is confirmed, the
// subscriber is told subject "" (it may have missed messages). go-redis
// reconnects, and resubscribes, on the next read.
//
// # Server requirements
//
// Redis 7.0 or later, or Valkey 7.2 or later (Open checks INFO when it is
// allowed): one standalone server, as the URL names one host (no Sentinel;
// no Cluster, as the scripts touch keys they do not declare). A restricted ACL user needs the keys and channel under the
// prefix and these commands (scan only for rcsso store migrate), e.g. for
// the default prefix:
//
//	user rcsso on >password ~rcsso:* &rcsso:changes +ping +info +hello +client|setname
//	  +get +set +getdel +del +exists +hget +hset +hsetnx +hgetall +hdel +incrby
//	  +pexpire +pexpireat +pexpiretime +sadd +srem +smembers +srandmember
//	  +multi +exec +eval +evalsha +publish +subscribe +scan
//
// For acknowledged writes to survive a server restart, run it with
// appendonly yes and appendfsync always (everysec may lose the last
// second).
//
// # Errors
//
// Errors are prefixed "redis: <operation>:" and wrap the cause
// (store.ErrNotFound, store.ErrConflict, *store.LinkTakenError, a context
// error or a go-redis error). They never contain session ids, tokens,
// record contents or the URL's password.
package redis

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rcsso/rcsso/internal/store"
)

// layout is the data layout version this package reads and writes.
const layout = "1"

// pruneBatch bounds how many sessions-of entries one PutSession checks.
const pruneBatch = 10

// maxLinkAttempts bounds UpdateLink's optimistic retries.
const maxLinkAttempts = 100

// feedCheck is how long a subscription may be silent before it is pinged;
// feedDead checks in a row without any traffic, the ping's answer
// included, count as a lost connection.
const (
	feedCheck = time.Second
	feedDead  = 3
)

// Store is a store.Store backed by Redis. It is safe for concurrent use;
// create it with Config.Open and release it with Close.
type Store struct {
	rdb    *goredis.Client
	prefix string
	log    *slog.Logger
	// feedCheck is the package's feedCheck; tests shorten it.
	feedCheck time.Duration

	// done ends every Subscribe when the store closes; feeds counts them.
	done  context.Context
	stop  context.CancelFunc
	feeds sync.WaitGroup
}

var (
	_ store.Store      = (*Store)(nil)
	_ store.Locker     = (*Store)(nil)
	_ store.ChangeFeed = (*Store)(nil)
	_ store.Exporter   = (*Store)(nil)

	_ store.ReadOnlyOpener = StoreConfig{}
)

func newStore(rdb *goredis.Client, prefix string, log *slog.Logger) *Store {
	done, stop := context.WithCancel(context.Background())
	return &Store{rdb: rdb, prefix: prefix, log: log, feedCheck: feedCheck, done: done, stop: stop}
}

// init pings the server, checks its version and claims the key prefix
// (readOnly: checks that it was claimed, for the layout this package
// reads); it returns the server's version.
func (s *Store) init(ctx context.Context, readOnly bool) (string, error) {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return "", err
	}
	version := ""
	if info, err := s.rdb.Info(ctx, "server").Result(); err == nil { // INFO may be denied by an ACL
		version = infoField(info, "valkey_version")
		name := "Valkey"
		if version == "" {
			version, name = infoField(info, "redis_version"), "Redis"
		}
		if major, _, _ := strings.Cut(version, "."); major != "" {
			if n, err := strconv.Atoi(major); err == nil && n < 7 {
				return version, fmt.Errorf("the server runs %s %s: rcsso needs Redis 7.0 or later, or Valkey 7.2 or later", name, version)
			}
		}
	}
	if !readOnly {
		if err := s.rdb.SetNX(ctx, s.prefix+"layout", layout, 0).Err(); err != nil {
			return version, err
		}
	}
	got, err := s.rdb.Get(ctx, s.prefix+"layout").Result()
	if readOnly && errors.Is(err, goredis.Nil) {
		return version, fmt.Errorf("no rcsso data under key prefix %q in this database: check the key prefix and the URL's database number: %w", s.prefix, store.ErrNoStore)
	}
	if err != nil {
		return version, err
	}
	if got != layout {
		return version, fmt.Errorf("the keys under prefix %q hold data layout %q and this rcsso reads layout %s: run the rcsso that wrote them, or use another store.redis.key_prefix", s.prefix, got, layout)
	}
	return version, nil
}

// infoField returns field's value in an INFO reply.
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (s *Store) key(kind, id string) string { return s.prefix + kind + ":" + id }

func wrap(op string, err error) error { return fmt.Errorf("redis: %s: %w", op, err) }

// check fails a call made with a done ctx before anything is sent.
func check(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return wrap(op, err)
	}
	return nil
}

// ms encodes a time as decimal unix milliseconds; zero is "".
func ms(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// parseMs decodes ms; "" is the zero time.
func parseMs(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, errors.New("malformed time in a stored record")
	}
	return time.UnixMilli(n).UTC(), nil
}

// times decodes several ms fields of m into dst, in order.
func times(m map[string]string, fields []string, dst ...*time.Time) error {
	for i, f := range fields {
		t, err := parseMs(m[f])
		if err != nil {
			return err
		}
		*dst[i] = t
	}
	return nil
}

// bytesOrNil converts a stored binary field; empty is nil.
func bytesOrNil(v string) []byte {
	if v == "" {
		return nil
	}
	return []byte(v)
}

// --- accounts ---

func encodeAccount(a store.Account) string {
	return url.Values{
		"password_hash": {a.PasswordHash}, "name": {a.Name}, "email": {a.Email},
		"created_at": {ms(a.CreatedAt)},
	}.Encode()
}

func decodeAccount(username, raw string) (store.Account, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return store.Account{}, errors.New("malformed account record")
	}
	a := store.Account{Username: username, PasswordHash: v.Get("password_hash"), Name: v.Get("name"), Email: v.Get("email")}
	if a.CreatedAt, err = parseMs(v.Get("created_at")); err != nil {
		return store.Account{}, err
	}
	return a, nil
}

// CreateAccount implements store.Store with HSETNX; ErrConflict if the
// username exists.
func (s *Store) CreateAccount(ctx context.Context, a store.Account) error {
	if err := check(ctx, "create account"); err != nil {
		return err
	}
	name := strings.ToLower(a.Username)
	ok, err := s.rdb.HSetNX(ctx, s.prefix+"accounts", name, encodeAccount(a)).Result()
	if err != nil {
		return wrap("create account", err)
	}
	if !ok {
		return wrap("create account", store.ErrConflict)
	}
	return nil
}

// GetAccount implements store.Store; ErrNotFound if absent.
func (s *Store) GetAccount(ctx context.Context, username string) (store.Account, error) {
	if err := check(ctx, "get account"); err != nil {
		return store.Account{}, err
	}
	name := strings.ToLower(username)
	raw, err := s.rdb.HGet(ctx, s.prefix+"accounts", name).Result()
	if err != nil {
		return store.Account{}, wrap("get account", notFound(err))
	}
	a, err := decodeAccount(name, raw)
	if err != nil {
		return store.Account{}, wrap("get account", err)
	}
	return a, nil
}

// ListAccounts implements store.Store: all accounts (one HGETALL) ordered
// by username, byte-wise.
func (s *Store) ListAccounts(ctx context.Context) ([]store.Account, error) {
	if err := check(ctx, "list accounts"); err != nil {
		return nil, err
	}
	all, err := s.rdb.HGetAll(ctx, s.prefix+"accounts").Result()
	if err != nil {
		return nil, wrap("list accounts", err)
	}
	out := make([]store.Account, 0, len(all))
	for name, raw := range all {
		a, err := decodeAccount(name, raw)
		if err != nil {
			return nil, wrap("list accounts", err)
		}
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b store.Account) int { return strings.Compare(a.Username, b.Username) })
	return out, nil
}

// DeleteAccount implements store.Store; ErrNotFound if absent.
func (s *Store) DeleteAccount(ctx context.Context, username string) error {
	if err := check(ctx, "delete account"); err != nil {
		return err
	}
	n, err := s.rdb.HDel(ctx, s.prefix+"accounts", strings.ToLower(username)).Result()
	if err != nil {
		return wrap("delete account", err)
	}
	if n == 0 {
		return wrap("delete account", store.ErrNotFound)
	}
	return nil
}

// --- sessions ---

// putSessionScript replaces a session. KEYS: session, sessions-of of the
// new subject. ARGV: IDHash, expires_at ("" = already expired: only
// delete), sessions-of prefix, session prefix, subject, then field/value
// pairs.
var putSessionScript = goredis.NewScript(`
local old = redis.call('HGET', KEYS[1], 'subject')
if old and old ~= ARGV[5] then redis.call('SREM', ARGV[3] .. old, ARGV[1]) end
redis.call('DEL', KEYS[1])
if ARGV[2] == '' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 6))
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
if redis.call('PEXPIRETIME', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIREAT', KEYS[2], ARGV[2]) end
for _, id in ipairs(redis.call('SRANDMEMBER', KEYS[2], ` + strconv.Itoa(pruneBatch) + `)) do
  if redis.call('EXISTS', ARGV[4] .. id) == 0 then redis.call('SREM', KEYS[2], id) end
end
return 1`)

// deleteSessionsScript deletes the sessions listed for a subject that
// still belong to it. KEYS: sessions-of. ARGV: session prefix, subject.
var deleteSessionsScript = goredis.NewScript(`
local n = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local k = ARGV[1] .. id
  if redis.call('HGET', k, 'subject') == ARGV[2] then n = n + redis.call('DEL', k) end
end
redis.call('DEL', KEYS[1])
return n`)

// PutSession implements store.Store in one script: it replaces the record,
// sets its expiry, files it under its subject and drops up to 10 entries
// of that subject whose sessions are gone. A session that has already
// expired is deleted instead.
func (s *Store) PutSession(ctx context.Context, sess store.Session) error {
	if err := check(ctx, "put session"); err != nil {
		return err
	}
	exp := ""
	if sess.ExpiresAt.After(time.Now()) {
		exp = ms(sess.ExpiresAt)
	}
	args := []any{sess.IDHash, exp, s.prefix + "sessions-of:", s.prefix + "session:", sess.Subject,
		"subject", sess.Subject, "source", sess.Source, "username", sess.Username, "name", sess.Name,
		"email", sess.Email, "avatar_url", sess.AvatarURL, "created_at", ms(sess.CreatedAt), "expires_at", ms(sess.ExpiresAt)}
	if sess.EmailVerified {
		args = append(args, "email_verified", "1")
	}
	if sess.Roles != nil {
		args = append(args, "roles", url.Values{"r": sess.Roles}.Encode())
	}
	if sess.Groups != nil {
		args = append(args, "groups", url.Values{"g": sess.Groups}.Encode())
	}
	keys := []string{s.key("session", sess.IDHash), s.key("sessions-of", sess.Subject)}
	if err := putSessionScript.Run(ctx, s.rdb, keys, args...).Err(); err != nil {
		return wrap("put session", err)
	}
	return nil
}

// GetSession implements store.Store with one HGETALL; ErrNotFound if
// absent or expired.
func (s *Store) GetSession(ctx context.Context, idHash string) (store.Session, error) {
	if err := check(ctx, "get session"); err != nil {
		return store.Session{}, err
	}
	m, err := s.rdb.HGetAll(ctx, s.key("session", idHash)).Result()
	if err != nil {
		return store.Session{}, wrap("get session", err)
	}
	if len(m) == 0 {
		return store.Session{}, wrap("get session", store.ErrNotFound)
	}
	sess, err := decodeSession(idHash, m)
	if err != nil {
		return store.Session{}, wrap("get session", err)
	}
	if !sess.ExpiresAt.After(time.Now()) {
		return store.Session{}, wrap("get session", store.ErrNotFound)
	}
	return sess, nil
}

func decodeSession(idHash string, m map[string]string) (store.Session, error) {
	sess := store.Session{IDHash: idHash, Subject: m["subject"], Source: m["source"], Username: m["username"],
		Name: m["name"], Email: m["email"], EmailVerified: m["email_verified"] == "1", AvatarURL: m["avatar_url"]}
	if raw, ok := m["roles"]; ok {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return store.Session{}, errors.New("malformed roles in a stored session")
		}
		sess.Roles = append([]string{}, v["r"]...)
	}
	if raw, ok := m["groups"]; ok {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return store.Session{}, errors.New("malformed groups in a stored session")
		}
		sess.Groups = append([]string{}, v["g"]...)
	}
	err := times(m, []string{"created_at", "expires_at"}, &sess.CreatedAt, &sess.ExpiresAt)
	return sess, err
}

// DeleteSession implements store.Store; nil if absent. The subject's
// sessions-of entry is dropped later (see the package comment).
func (s *Store) DeleteSession(ctx context.Context, idHash string) error {
	if err := check(ctx, "delete session"); err != nil {
		return err
	}
	if err := s.rdb.Del(ctx, s.key("session", idHash)).Err(); err != nil {
		return wrap("delete session", err)
	}
	return nil
}

// DeleteSessionsBySubject implements store.Store in one script over the
// subject's sessions-of set. Sessions Redis already expired are not
// counted.
func (s *Store) DeleteSessionsBySubject(ctx context.Context, subject string) (int, error) {
	if err := check(ctx, "delete sessions by subject"); err != nil {
		return 0, err
	}
	n, err := deleteSessionsScript.Run(ctx, s.rdb, []string{s.key("sessions-of", subject)},
		s.prefix+"session:", subject).Int()
	if err != nil {
		return 0, wrap("delete sessions by subject", err)
	}
	return n, nil
}

// --- links ---

// updateLinkScript writes a link if its revision is still the one read.
// KEYS: link. ARGV: revision read ("" = no link), new revision, link-user
// prefix, link prefix, subject, new user id, then field/value pairs.
// Returns {"ok"}, {"retry"} or {"taken", holder}.
var updateLinkScript = goredis.NewScript(`
if (redis.call('HGET', KEYS[1], 'rev') or '') ~= ARGV[1] then return {'retry'} end
local old = redis.call('HGET', KEYS[1], 'user_id') or ''
local new = ARGV[6]
if new ~= '' then
  local holder = redis.call('GET', ARGV[3] .. new)
  if holder and holder ~= ARGV[5] and redis.call('HGET', ARGV[4] .. holder, 'user_id') == new then
    return {'taken', holder}
  end
end
if old ~= '' and old ~= new and redis.call('GET', ARGV[3] .. old) == ARGV[5] then
  redis.call('DEL', ARGV[3] .. old)
end
if new ~= '' then redis.call('SET', ARGV[3] .. new, ARGV[5]) end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'rev', ARGV[2], unpack(ARGV, 7))
return {'ok'}`)

// deleteLinkScript deletes a link and its link-user entry. KEYS: link.
// ARGV: link-user prefix, subject.
var deleteLinkScript = goredis.NewScript(`
local u = redis.call('HGET', KEYS[1], 'user_id')
if u and u ~= '' and redis.call('GET', ARGV[1] .. u) == ARGV[2] then redis.call('DEL', ARGV[1] .. u) end
return redis.call('DEL', KEYS[1])`)

var linkTimes = []string{"profile_synced_at", "last_mint_at", "creating_at", "deactivated_at", "updated_at", "chat_logged_out_at"}

func decodeLink(subject string, m map[string]string) (store.Link, error) {
	l := store.Link{Subject: subject, UserID: m["user_id"], Username: m["username"], ProfileHash: m["profile_hash"],
		CreatingUsername: m["creating_username"], Secret: bytesOrNil(m["secret"])}
	err := times(m, linkTimes, &l.ProfileSyncedAt, &l.LastMintAt, &l.CreatingAt, &l.DeactivatedAt, &l.UpdatedAt, &l.ChatLoggedOutAt)
	if err == nil {
		l.Rooms, err = store.DecodeRooms(m["rooms"])
	}
	return l, err
}

func linkFields(l store.Link) []any {
	return []any{"user_id", l.UserID, "username", l.Username, "profile_hash", l.ProfileHash,
		"profile_synced_at", ms(l.ProfileSyncedAt), "last_mint_at", ms(l.LastMintAt),
		"creating_username", l.CreatingUsername, "creating_at", ms(l.CreatingAt),
		"deactivated_at", ms(l.DeactivatedAt), "updated_at", ms(l.UpdatedAt),
		"chat_logged_out_at", ms(l.ChatLoggedOutAt), "secret", string(l.Secret), "rooms", store.EncodeRooms(l.Rooms)}
}

// GetLink implements store.Store with one HGETALL; ErrNotFound if absent.
func (s *Store) GetLink(ctx context.Context, subject string) (store.Link, error) {
	if err := check(ctx, "get link"); err != nil {
		return store.Link{}, err
	}
	l, _, err := s.readLink(ctx, subject)
	if err != nil {
		return store.Link{}, wrap("get link", err)
	}
	return l, nil
}

// readLink returns subject's link and revision; ErrNotFound if absent.
func (s *Store) readLink(ctx context.Context, subject string) (store.Link, string, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("link", subject)).Result()
	if err != nil {
		return store.Link{}, "", err
	}
	if len(m) == 0 {
		return store.Link{}, "", store.ErrNotFound
	}
	l, err := decodeLink(subject, m)
	return l, m["rev"], err
}

// LinkByUserID implements store.Store: link-user names the subject, whose
// link must still hold the user id; ErrNotFound otherwise.
func (s *Store) LinkByUserID(ctx context.Context, userID string) (store.Link, error) {
	if err := check(ctx, "link by user id"); err != nil {
		return store.Link{}, err
	}
	if userID == "" {
		return store.Link{}, wrap("link by user id", store.ErrNotFound)
	}
	subject, err := s.rdb.Get(ctx, s.key("link-user", userID)).Result()
	if err != nil {
		return store.Link{}, wrap("link by user id", notFound(err))
	}
	l, _, err := s.readLink(ctx, subject)
	if err == nil && l.UserID != userID {
		err = store.ErrNotFound // moved on between the two reads
	}
	if err != nil {
		return store.Link{}, wrap("link by user id", err)
	}
	return l, nil
}

// UpdateLink implements store.Store with optimistic concurrency (see the
// package comment): the updater may run several times, each time on the
// link as then stored.
func (s *Store) UpdateLink(ctx context.Context, subject string, update func(*store.Link) error) (store.Link, error) {
	if err := check(ctx, "update link"); err != nil {
		return store.Link{}, err
	}
	key := s.key("link", subject)
	for attempt := range maxLinkAttempts {
		l, rev, err := s.readLink(ctx, subject)
		switch {
		case errors.Is(err, store.ErrNotFound):
			l, rev = store.Link{Subject: subject}, ""
		case err != nil:
			return store.Link{}, wrap("update link", err)
		}
		if err := update(&l); err != nil {
			return store.Link{}, err
		}
		l.Subject = subject
		l.UpdatedAt = time.UnixMilli(time.Now().UnixMilli()).UTC()
		if !l.Rooms.SyncedAt.IsZero() {
			l.Rooms.SyncedAt = time.UnixMilli(l.Rooms.SyncedAt.UnixMilli()).UTC() // as EncodeRooms keeps it
		}
		args := append([]any{rev, rand.Text(), s.prefix + "link-user:", s.prefix + "link:", subject, l.UserID}, linkFields(l)...)
		res, err := updateLinkScript.Run(ctx, s.rdb, []string{key}, args...).StringSlice()
		if err != nil {
			return store.Link{}, wrap("update link", err)
		}
		switch res[0] {
		case "ok":
			return l, nil
		case "taken":
			return store.Link{}, wrap("update link", &store.LinkTakenError{UserID: l.UserID, Holder: res[1]})
		}
		// Another write came first: back off a little, then read it.
		if err := pause(ctx, time.Duration(mrand.IntN(min(attempt, 20)+1))*time.Millisecond); err != nil {
			return store.Link{}, wrap("update link", err)
		}
	}
	return store.Link{}, wrap("update link", fmt.Errorf("%d concurrent writes of the same link won over this one: giving up", maxLinkAttempts))
}

// pause waits d or until ctx is done.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// DeleteLink implements store.Store in one script that also frees the
// link's user id; nil if absent.
func (s *Store) DeleteLink(ctx context.Context, subject string) error {
	if err := check(ctx, "delete link"); err != nil {
		return err
	}
	if err := deleteLinkScript.Run(ctx, s.rdb, []string{s.key("link", subject)}, s.prefix+"link-user:", subject).Err(); err != nil {
		return wrap("delete link", err)
	}
	return nil
}

// --- tokens ---

// GetToken implements store.Store with one HGETALL; ErrNotFound if absent.
func (s *Store) GetToken(ctx context.Context, subject string) (store.Token, error) {
	if err := check(ctx, "get token"); err != nil {
		return store.Token{}, err
	}
	m, err := s.rdb.HGetAll(ctx, s.key("token", subject)).Result()
	if err != nil {
		return store.Token{}, wrap("get token", err)
	}
	if len(m) == 0 {
		return store.Token{}, wrap("get token", store.ErrNotFound)
	}
	t := store.Token{Subject: subject, UserID: m["user_id"], Ciphertext: []byte(m["ciphertext"])}
	if err := times(m, []string{"minted_at", "validated_at"}, &t.MintedAt, &t.ValidatedAt); err != nil {
		return store.Token{}, wrap("get token", err)
	}
	return t, nil
}

// PutToken implements store.Store with one HSET of every field.
func (s *Store) PutToken(ctx context.Context, t store.Token) error {
	if err := check(ctx, "put token"); err != nil {
		return err
	}
	if err := s.rdb.HSet(ctx, s.key("token", t.Subject), "user_id", t.UserID, "ciphertext", t.Ciphertext,
		"minted_at", ms(t.MintedAt), "validated_at", ms(t.ValidatedAt)).Err(); err != nil {
		return wrap("put token", err)
	}
	return nil
}

// DeleteToken implements store.Store; nil if absent.
func (s *Store) DeleteToken(ctx context.Context, subject string) error {
	if err := check(ctx, "delete token"); err != nil {
		return err
	}
	if err := s.rdb.Del(ctx, s.key("token", subject)).Err(); err != nil {
		return wrap("delete token", err)
	}
	return nil
}

// --- codes, single use, counters ---

func encodeCode(c store.Code) string {
	return url.Values{"subject": {c.Subject}, "origin": {c.Origin}, "expires_at": {ms(c.ExpiresAt)},
		"profile": {string(c.Profile)}}.Encode()
}

func decodeCode(h, raw string) (store.Code, error) {
	v, err := url.ParseQuery(raw)
	if err != nil {
		return store.Code{}, errors.New("malformed code record")
	}
	c := store.Code{Hash: h, Subject: v.Get("subject"), Origin: v.Get("origin"), Profile: bytesOrNil(v.Get("profile"))}
	c.ExpiresAt, err = parseMs(v.Get("expires_at"))
	return c, err
}

// PutCode implements store.Store: SET with PXAT ExpiresAt (a code already
// expired is deleted instead).
func (s *Store) PutCode(ctx context.Context, c store.Code) error {
	if err := check(ctx, "put code"); err != nil {
		return err
	}
	key := s.key("code", c.Hash)
	var err error
	if c.ExpiresAt.After(time.Now()) {
		err = s.rdb.Do(ctx, "SET", key, encodeCode(c), "PXAT", c.ExpiresAt.UnixMilli()).Err()
	} else {
		err = s.rdb.Del(ctx, key).Err()
	}
	if err != nil {
		return wrap("put code", err)
	}
	return nil
}

// ConsumeCode implements store.Store with GETDEL, so of concurrent
// redemptions exactly one gets the code.
func (s *Store) ConsumeCode(ctx context.Context, h string) (store.Code, error) {
	if err := check(ctx, "consume code"); err != nil {
		return store.Code{}, err
	}
	raw, err := s.rdb.GetDel(ctx, s.key("code", h)).Result()
	if err != nil {
		return store.Code{}, wrap("consume code", notFound(err))
	}
	c, err := decodeCode(h, raw)
	if err != nil {
		return store.Code{}, wrap("consume code", err)
	}
	if !c.ExpiresAt.After(time.Now()) {
		return store.Code{}, wrap("consume code", store.ErrNotFound)
	}
	return c, nil
}

// UseOnce implements store.Store with SET NX PXAT expiresAt. A key whose
// expiresAt has passed is recorded nowhere: the call reports whether an
// unexpired use exists.
func (s *Store) UseOnce(ctx context.Context, key string, expiresAt time.Time) (bool, error) {
	if err := check(ctx, "use once"); err != nil {
		return false, err
	}
	k := s.key("used", key)
	if !expiresAt.After(time.Now()) {
		n, err := s.rdb.Exists(ctx, k).Result()
		if err != nil {
			return false, wrap("use once", err)
		}
		return n == 0, nil
	}
	err := s.rdb.Do(ctx, "SET", k, "1", "NX", "PXAT", expiresAt.UnixMilli()).Err()
	switch {
	case errors.Is(err, goredis.Nil):
		return false, nil
	case err != nil:
		return false, wrap("use once", err)
	}
	return true, nil
}

// Count implements store.Store: INCRBY, PEXPIRE NX window and PEXPIRETIME
// in one MULTI, so the first increment of a window sets its end and the
// others keep it. window is rounded up to whole milliseconds (at least 1).
func (s *Store) Count(ctx context.Context, key string, delta int64, window time.Duration) (int64, time.Time, error) {
	if err := check(ctx, "count"); err != nil {
		return 0, time.Time{}, err
	}
	k := s.key("count", key)
	var incr *goredis.IntCmd
	var end *goredis.Cmd
	_, err := s.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		incr = p.IncrBy(ctx, k, delta)
		p.Do(ctx, "PEXPIRE", k, ceilMs(window), "NX")
		end = p.Do(ctx, "PEXPIRETIME", k)
		return nil
	})
	if err != nil {
		return 0, time.Time{}, wrap("count", err)
	}
	at, err := end.Int64()
	if err != nil || at < 0 {
		return 0, time.Time{}, wrap("count", fmt.Errorf("the counter has no expiry (PEXPIRETIME %d, %v)", at, err))
	}
	return incr.Val(), time.UnixMilli(at).UTC(), nil
}

// ceilMs is d in whole milliseconds, rounded up, at least 1.
func ceilMs(d time.Duration) int64 {
	return max(1, int64((d+time.Millisecond-1)/time.Millisecond))
}

// ResetCount implements store.Store; nil if absent.
func (s *Store) ResetCount(ctx context.Context, key string) error {
	if err := check(ctx, "reset count"); err != nil {
		return err
	}
	if err := s.rdb.Del(ctx, s.key("count", key)).Err(); err != nil {
		return wrap("reset count", err)
	}
	return nil
}

// --- locks ---

// renewScript extends a lease held by ARGV[1] to ARGV[2] ms (<= 0: ends
// it). KEYS: lock. Returns 1 if the token held it.
var renewScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) else redis.call('DEL', KEYS[1]) end
return 1`)

// unlockScript deletes a lease held by ARGV[1]. KEYS: lock.
var unlockScript = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// TryLock implements store.Locker with SET NX PX and a random token. A
// ttl <= 0 asks for a lease that has already ended: it is granted, and
// nothing written, when nobody holds the key.
func (s *Store) TryLock(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	if err := check(ctx, "lock"); err != nil {
		return "", false, err
	}
	token, k := rand.Text(), s.key("lock", key)
	if ttl <= 0 {
		n, err := s.rdb.Exists(ctx, k).Result()
		if err != nil {
			return "", false, wrap("lock", err)
		}
		return token, n == 0, nil
	}
	err := s.rdb.Do(ctx, "SET", k, token, "NX", "PX", ceilMs(ttl)).Err()
	switch {
	case errors.Is(err, goredis.Nil):
		return "", false, nil
	case err != nil:
		return "", false, wrap("lock", err)
	}
	return token, true, nil
}

// Renew implements store.Locker in one script that compares the token.
func (s *Store) Renew(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	if err := check(ctx, "renew lock"); err != nil {
		return false, err
	}
	d := int64(0)
	if ttl > 0 {
		d = ceilMs(ttl)
	}
	n, err := renewScript.Run(ctx, s.rdb, []string{s.key("lock", key)}, token, d).Int()
	if err != nil {
		return false, wrap("renew lock", err)
	}
	return n == 1, nil
}

// Unlock implements store.Locker in one script that compares the token.
func (s *Store) Unlock(ctx context.Context, key, token string) error {
	if err := check(ctx, "unlock"); err != nil {
		return err
	}
	if err := unlockScript.Run(ctx, s.rdb, []string{s.key("lock", key)}, token).Err(); err != nil {
		return wrap("unlock", err)
	}
	return nil
}

// --- change feed ---

// Publish implements store.ChangeFeed with PUBLISH.
func (s *Store) Publish(ctx context.Context, subject string) error {
	if err := check(ctx, "publish"); err != nil {
		return err
	}
	if err := s.rdb.Publish(ctx, s.prefix+"changes", subject).Err(); err != nil {
		return wrap("publish", err)
	}
	return nil
}

// Subscribe implements store.ChangeFeed: it returns once the server has
// confirmed the subscription; delivery runs on a goroutine until ctx is
// done or the store closes (see the package comment for reconnects).
func (s *Store) Subscribe(ctx context.Context, fn func(string)) error {
	if err := check(ctx, "subscribe"); err != nil {
		return err
	}
	ps := s.rdb.Subscribe(ctx, s.prefix+"changes")
	wait := s.rdb.Options().ReadTimeout
	if wait <= 0 {
		wait = 3 * time.Second
	}
	msg, err := ps.ReceiveTimeout(ctx, wait)
	if err == nil {
		if sub, ok := msg.(*goredis.Subscription); !ok || sub.Kind != "subscribe" {
			err = fmt.Errorf("unexpected reply %T to SUBSCRIBE", msg)
		}
	}
	if err != nil {
		_ = ps.Close()
		return wrap("subscribe", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.done, cancel)
	s.feeds.Go(func() {
		defer stop()
		defer cancel()
		f := &feed{s: s, ps: ps, fn: fn}
		defer f.close()
		context.AfterFunc(ctx, f.close) // interrupts a blocked read
		f.run(ctx)
	})
	return nil
}

// feed is one Subscribe's delivery loop.
type feed struct {
	s  *Store
	fn func(string)

	mu     sync.Mutex
	ps     *goredis.PubSub // replaced after a silent connection
	closed bool
}

func (f *feed) pubsub() *goredis.PubSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ps
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		_ = f.ps.Close()
	}
}

// replace drops a connection that stopped answering and subscribes anew
// (go-redis connects on the next read).
func (f *feed) replace(ctx context.Context) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	_ = f.ps.Close()
	f.ps = f.s.rdb.Subscribe(ctx, f.s.prefix+"changes")
}

func (f *feed) run(ctx context.Context) {
	lost := false // told the subscriber "" for an outage not yet over
	silent := 0   // feedCheck periods without traffic
	backoff := 50 * time.Millisecond
	fail := func(err error) {
		if !lost {
			lost = true
			f.s.log.Warn("store: redis change feed interrupted; cached state dropped", "err", err)
			f.deliver(ctx, "")
		}
	}
	for ctx.Err() == nil {
		msg, err := f.pubsub().ReceiveTimeout(ctx, f.s.feedCheck)
		if ctx.Err() != nil {
			return
		}
		var ne net.Error
		switch {
		case err != nil && errors.As(err, &ne) && ne.Timeout():
			silent++
			if silent < feedDead {
				if silent > 1 {
					continue // the ping is on its way
				}
				if err := f.pubsub().Ping(ctx); err == nil {
					continue
				}
			}
			fail(err)
			f.replace(ctx)
			silent = 0
		case err != nil:
			fail(err)
			if pause(ctx, backoff) != nil {
				return
			}
			backoff = min(2*backoff, time.Second)
		default:
			silent, backoff = 0, 50*time.Millisecond
			switch m := msg.(type) {
			case *goredis.Message:
				f.deliver(ctx, m.Payload)
			case *goredis.Subscription:
				// A subscription confirmed again: the connection was new.
				if m.Kind == "subscribe" {
					if lost {
						f.s.log.Info("store: redis change feed resubscribed")
					}
					lost = false
					f.deliver(ctx, "")
				}
			}
		}
	}
}

func (f *feed) deliver(ctx context.Context, subject string) {
	if ctx.Err() == nil {
		f.fn(subject)
	}
}

// --- export ---

// exportBatch is how many keys one SCAN step asks for; their hashes are
// read in one pipeline.
const exportBatch = 100

// Export implements store.Exporter: accounts from one HGETALL, then
// sessions, links and tokens by SCAN over their key pattern (TYPE hash,
// the prefix's glob characters escaped), each step's hashes read in one
// pipeline. It is not a snapshot: a record written or deleted while
// Export runs may or may not be seen. Keys seen are remembered, so a key
// SCAN returns twice is yielded once.
func (s *Store) Export(ctx context.Context, v store.Visitor) error {
	if err := check(ctx, "export"); err != nil {
		return err
	}
	if v.Account != nil {
		accounts, err := s.ListAccounts(ctx)
		if err != nil {
			return wrap("export", err)
		}
		for _, a := range accounts {
			if err := check(ctx, "export"); err != nil {
				return err
			}
			if err := v.Account(a); err != nil {
				return err
			}
		}
	}
	if v.Session != nil {
		err := s.scanHashes(ctx, "session", func(id string, m map[string]string) error {
			sess, err := decodeSession(id, m)
			if err != nil {
				return wrap("export sessions", err)
			}
			if !sess.ExpiresAt.After(time.Now()) {
				return nil
			}
			return v.Session(sess)
		})
		if err != nil {
			return err
		}
	}
	if v.Link != nil {
		err := s.scanHashes(ctx, "link", func(subject string, m map[string]string) error {
			l, err := decodeLink(subject, m)
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
		err := s.scanHashes(ctx, "token", func(subject string, m map[string]string) error {
			t := store.Token{Subject: subject, UserID: m["user_id"], Ciphertext: []byte(m["ciphertext"])}
			if err := times(m, []string{"minted_at", "validated_at"}, &t.MintedAt, &t.ValidatedAt); err != nil {
				return wrap("export tokens", err)
			}
			return v.Token(t)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// scanHashes calls fn with the id and fields of every hash "P kind:<id>",
// once each, until fn fails (its error is returned as is).
func (s *Store) scanHashes(ctx context.Context, kind string, fn func(id string, m map[string]string) error) error {
	prefix := s.prefix + kind + ":"
	match := globEscape(prefix) + "*"
	seen := make(map[string]struct{})
	var cursor uint64
	for {
		keys, next, err := s.rdb.ScanType(ctx, cursor, match, exportBatch, "hash").Result()
		if err != nil {
			return wrap("export", err)
		}
		var fresh []string
		for _, k := range keys {
			if _, dup := seen[k]; !dup && strings.HasPrefix(k, prefix) {
				seen[k] = struct{}{}
				fresh = append(fresh, k)
			}
		}
		cmds := make([]*goredis.MapStringStringCmd, len(fresh))
		if len(fresh) > 0 {
			_, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for i, k := range fresh {
					cmds[i] = p.HGetAll(ctx, k)
				}
				return nil
			})
			if err != nil {
				return wrap("export", err)
			}
		}
		for i, k := range fresh {
			if err := check(ctx, "export"); err != nil {
				return err
			}
			if m := cmds[i].Val(); len(m) > 0 { // empty: deleted since SCAN
				if err := fn(strings.TrimPrefix(k, prefix), m); err != nil {
					return err
				}
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// globEscape escapes the characters Redis's glob-style MATCH patterns
// give a meaning (* ? [ ] \), so that s matches only itself.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// --- misc ---

// Ping implements store.Store with PING.
func (s *Store) Ping(ctx context.Context) error {
	if err := check(ctx, "ping"); err != nil {
		return err
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return wrap("ping", err)
	}
	return nil
}

// Close implements store.Store: it ends every subscription, waits for
// their goroutines and closes the connections.
func (s *Store) Close() error {
	s.stop()
	s.feeds.Wait()
	if err := s.rdb.Close(); err != nil {
		return wrap("close", err)
	}
	return nil
}

// notFound maps goredis.Nil (no such key or field) to store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, goredis.Nil) {
		return store.ErrNotFound
	}
	return err
}
