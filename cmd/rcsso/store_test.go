package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/postgres"
	"github.com/rcsso/rcsso/internal/store/redis"
	"github.com/rcsso/rcsso/internal/store/sqlite"
	"github.com/rcsso/rcsso/internal/testing/pgtest"
	"github.com/rcsso/rcsso/internal/testing/redistest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// secret is the password in every URL the tests give: no output may show it.
const secret = "hunter2secret"

// noSecret fails t if any output shows the password.
func noSecret(t *testing.T, outputs ...string) {
	t.Helper()
	for _, o := range outputs {
		if strings.Contains(o, secret) {
			t.Errorf("output shows the password:\n%s", o)
		}
	}
}

// records is what populate writes into the source: every long-lived kind,
// every link field set on one link.
type records struct {
	accounts []store.Account
	sessions []store.Session // unexpired
	links    []store.Link
	tokens   []store.Token
}

// populate creates an SQLite store at path holding every kind of record
// (and short-lived ones, which are not copied), plus the generated key
// file beside it, and returns the long-lived records written.
func populate(t *testing.T, path string) records {
	t.Helper()
	ctx := t.Context()
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.WriteFile(path+".key", []byte("c2VjcmV0LWtleS1vZi0zMi1ieXRlcy1mb3ItdGVzdHM=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Millisecond times, as the SQLite store keeps them.
	n := time.Now().UTC().Truncate(time.Millisecond)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	r := records{
		accounts: []store.Account{
			{Username: "alice", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA", Name: "Alice A.", Email: "alice@example.org", CreatedAt: n.Add(-48 * time.Hour)},
			{Username: "bob", PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdDI$aGFzaDI", CreatedAt: n.Add(-time.Hour)},
		},
		sessions: []store.Session{
			{IDHash: "h-alice", Subject: "local:alice", Source: "local", Username: "alice", Name: "Alice A.", Email: "alice@example.org",
				EmailVerified: true, AvatarURL: "https://img.example.org/a.png", Roles: []string{"admin", "user"},
				CreatedAt: n.Add(-time.Hour), ExpiresAt: n.Add(11 * time.Hour)},
			{IDHash: "h-oidc", Subject: "oidc:7f3a", Source: "oidc", Username: "carol", Roles: []string{}, CreatedAt: n, ExpiresAt: n.Add(time.Hour)},
			{IDHash: "h-bob", Subject: "local:bob", Source: "local", Username: "bob", CreatedAt: n, ExpiresAt: n.Add(2 * time.Hour)},
		},
		links: []store.Link{
			{Subject: "local:alice", UserID: "rcAliceUserId0001", Username: "alice", ProfileHash: "sha256:abc",
				ProfileSyncedAt: n.Add(-time.Hour), LastMintAt: n.Add(-time.Minute), CreatingUsername: "alice.1",
				CreatingAt: n.Add(-2 * time.Hour), DeactivatedAt: n.Add(-3 * time.Hour), ChatLoggedOutAt: n.Add(-4 * time.Hour),
				Secret: []byte{0, 1, 0xfe, 0xff, 0},
				Rooms: store.RoomsState{UserID: "rcAliceUserId0001", Added: []string{"c:r1:sales", "t:t1:Sales"}, Pending: []string{"p:g1:leads"},
					Hash: "h1", SyncedAt: n.Add(-5 * time.Minute)}},
			{Subject: "oidc:7f3a", Username: "carol", CreatingUsername: "carol", CreatingAt: n, Secret: []byte("sealed-password")},
			{Subject: "local:bob", UserID: "rcBobUserId000002", Username: "bob"},
		},
		tokens: []store.Token{
			{Subject: "local:alice", UserID: "rcAliceUserId0001", Ciphertext: all, MintedAt: n.Add(-time.Hour), ValidatedAt: n},
			{Subject: "local:bob", UserID: "rcBobUserId000002", Ciphertext: []byte{0}, MintedAt: n, ValidatedAt: n},
		},
	}
	for _, a := range r.accounts {
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	for _, sess := range r.sessions {
		if err := s.PutSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutSession(ctx, store.Session{IDHash: "h-expired", Subject: "local:alice", ExpiresAt: n.Add(-time.Minute)}); err != nil {
		t.Fatal(err)
	}
	for _, l := range r.links {
		if _, err := s.UpdateLink(ctx, l.Subject, func(old *store.Link) error { *old = l; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for _, tok := range r.tokens {
		if err := s.PutToken(ctx, tok); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutCode(ctx, store.Code{Hash: "code", Subject: "local:alice", Origin: "https://www.example.org", ExpiresAt: n.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UseOnce(ctx, "webhook:mac", n.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Count(ctx, "login-failures:alice", 3, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.TryLock(ctx, "mint:local:alice", time.Minute); err != nil {
		t.Fatal(err)
	}
	return r
}

const wantCopied = "copied: 2 accounts, 3 sessions, 3 links, 2 cached tokens"

// compare reads every record back through the target store and compares
// it field by field with what was written into the source; the target
// holds nothing else (no expired session, nothing short-lived).
func compare(t *testing.T, st store.Store, want records) {
	t.Helper()
	ctx := t.Context()
	for _, w := range want.accounts {
		g, err := st.GetAccount(ctx, w.Username)
		if err != nil {
			t.Errorf("account %s: %v", w.Username, err)
			continue
		}
		if g.Username != w.Username || g.PasswordHash != w.PasswordHash || g.Name != w.Name || g.Email != w.Email || !g.CreatedAt.Equal(w.CreatedAt) {
			t.Errorf("account %s = %+v, want %+v", w.Username, g, w)
		}
	}
	for _, w := range want.sessions {
		g, err := st.GetSession(ctx, w.IDHash)
		if err != nil {
			t.Errorf("session %s: %v", w.IDHash, err)
			continue
		}
		if g.Subject != w.Subject || g.Source != w.Source || g.Username != w.Username || g.Name != w.Name || g.Email != w.Email ||
			g.EmailVerified != w.EmailVerified || g.AvatarURL != w.AvatarURL || (g.Roles == nil) != (w.Roles == nil) ||
			!slices.Equal(g.Roles, w.Roles) || !g.CreatedAt.Equal(w.CreatedAt) || !g.ExpiresAt.Equal(w.ExpiresAt) {
			t.Errorf("session %s = %+v, want %+v", w.IDHash, g, w)
		}
	}
	for _, w := range want.links {
		g, err := st.GetLink(ctx, w.Subject)
		if err != nil {
			t.Errorf("link %s: %v", w.Subject, err)
			continue
		}
		if g.UserID != w.UserID || g.Username != w.Username || g.ProfileHash != w.ProfileHash ||
			g.CreatingUsername != w.CreatingUsername || !bytes.Equal(g.Secret, w.Secret) ||
			!g.ProfileSyncedAt.Equal(w.ProfileSyncedAt) || !g.LastMintAt.Equal(w.LastMintAt) ||
			!g.CreatingAt.Equal(w.CreatingAt) || !g.DeactivatedAt.Equal(w.DeactivatedAt) ||
			!g.ChatLoggedOutAt.Equal(w.ChatLoggedOutAt) || store.EncodeRooms(g.Rooms) != store.EncodeRooms(w.Rooms) {
			t.Errorf("link %s = %+v, want %+v", w.Subject, g, w)
		}
		if w.UserID != "" {
			if by, err := st.LinkByUserID(ctx, w.UserID); err != nil || by.Subject != w.Subject {
				t.Errorf("LinkByUserID(%s) = %q, %v, want %s", w.UserID, by.Subject, err, w.Subject)
			}
		}
	}
	for _, w := range want.tokens {
		g, err := st.GetToken(ctx, w.Subject)
		if err != nil {
			t.Errorf("token %s: %v", w.Subject, err)
			continue
		}
		if g.UserID != w.UserID || !bytes.Equal(g.Ciphertext, w.Ciphertext) || !g.MintedAt.Equal(w.MintedAt) || !g.ValidatedAt.Equal(w.ValidatedAt) {
			t.Errorf("token %s = {%s %x %v %v}, want {%s %x %v %v}", w.Subject, g.UserID, g.Ciphertext, g.MintedAt, g.ValidatedAt,
				w.UserID, w.Ciphertext, w.MintedAt, w.ValidatedAt)
		}
	}
	c, err := count(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if want := (counts{len(want.accounts), len(want.sessions), len(want.links), len(want.tokens)}); c != want {
		t.Errorf("the target holds %s, want %s", c, want)
	}
	if _, err := st.ConsumeCode(ctx, "code"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a single-use code was copied: %v", err)
	}
}

// fileHash is the SHA-256 of a file's bytes.
func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// migrateTwice runs the migration into an empty target, checks the
// output and the copy, is refused a second time without --force, and
// with --force gives the same result again. It leaves the source file
// unchanged.
func migrateTwice(t *testing.T, src, dst string, open func() store.Store, extra ...string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "rcsso.db")
	want := populate(t, path)
	before := fileHash(t, path)
	args := append([]string{"store", "migrate", "--from", src + path, "--to", dst}, extra...)

	code, out, errOut := runCLI(t, "", args...)
	noSecret(t, out, errOut)
	if code != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	for _, w := range []string{"target: empty", wantCopied, "target now holds: 2 accounts, 3 sessions, 3 links, 2 cached tokens",
		"not copied", "single-use codes and keys, counters, leases", "same store.encryption_key", path + ".key"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	st := open()
	compare(t, st, want)
	st.Close()

	code, out, errOut = runCLI(t, "", args...)
	noSecret(t, out, errOut)
	if code != 1 || !strings.Contains(errOut, "already holds 2 accounts, 3 sessions, 3 links, 2 cached tokens") || !strings.Contains(errOut, "--force") {
		t.Errorf("second migrate without --force: exit %d\n%s%s", code, out, errOut)
	}

	code, out, errOut = runCLI(t, "", append(args, "--force")...)
	noSecret(t, out, errOut)
	if code != 0 || !strings.Contains(out, wantCopied) || !strings.Contains(out, "target now holds: 2 accounts, 3 sessions, 3 links, 2 cached tokens") {
		t.Fatalf("migrate --force: exit %d\n%s%s", code, out, errOut)
	}
	st = open()
	compare(t, st, want)
	st.Close()

	if fileHash(t, path) != before {
		t.Error("the migration wrote to the source database")
	}
}

func TestStoreMigrateToPostgres(t *testing.T) {
	url := pgtest.Database(t) // trust authentication: the password is sent and ignored
	withPassword := strings.Replace(url, "postgres://postgres@", "postgres://postgres:"+secret+"@", 1)
	urlFile := filepath.Join(t.TempDir(), "pg-url")
	if err := os.WriteFile(urlFile, []byte(withPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := func() store.Store {
		s, err := postgres.Config{URL: url}.Open(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	migrateTwice(t, "sqlite:", "postgres:@"+urlFile, open)

	// The URL on the command line shows up redacted.
	code, out, errOut := runCLI(t, "", "store", "migrate", "--from", "sqlite:"+filepath.Join(t.TempDir(), "missing.db"), "--to", withPassword)
	noSecret(t, out, errOut)
	if code != 1 || !strings.Contains(out, "postgres://postgres:xxxxx@127.0.0.1") {
		t.Errorf("exit %d, want the redacted URL in the output:\n%s%s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "", "store", "migrate", "--from", "sqlite:"+filepath.Join(t.TempDir(), "missing.db"), "--to", "postgres:"+withPassword)
	noSecret(t, out, errOut)
	if code != 1 || !strings.Contains(out, "postgres://postgres:xxxxx@127.0.0.1") {
		t.Errorf("exit %d, want the redacted URL in the output:\n%s%s", code, out, errOut)
	}
}

func TestStoreMigrateToRedis(t *testing.T) {
	srv := redistest.StartServer(t, redistest.Options{Password: secret})
	open := func() store.Store {
		s, err := redis.Config{URL: srv.URL(), KeyPrefix: "chat-sso:"}.Open(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	migrateTwice(t, "sqlite:", "redis:"+srv.URL(), open, "--to-key-prefix", "chat-sso:")

	// A dry run into another prefix claims nothing there.
	path := filepath.Join(t.TempDir(), "rcsso.db")
	populate(t, path)
	code, out, errOut := runCLI(t, "", "store", "migrate", "--dry-run", "--from", "sqlite:"+path, "--to", srv.URL())
	noSecret(t, out, errOut)
	if code != 0 || !strings.Contains(out, "would copy: 2 accounts, 3 sessions, 3 links, 2 cached tokens") ||
		!strings.Contains(out, "redis://:xxxxx@127.0.0.1") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	if s, err := (redis.Config{URL: srv.URL()}).OpenReadOnly(t.Context(), nil); !errors.Is(err, store.ErrNoStore) {
		if s != nil {
			s.Close()
		}
		t.Errorf("after a dry run the default prefix holds an rcsso store (%v)", err)
	}
}

// SQLite to SQLite needs no server; a dry run creates no target; a
// target that already holds records is refused and left alone.
func TestStoreMigrateSQLite(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "copy.db")
	path := filepath.Join(dir, "rcsso.db")
	populate(t, path)

	code, out, errOut := runCLI(t, "", "store", "migrate", "--from", "sqlite:"+path, "--to", "sqlite:"+target, "--dry-run")
	if code != 0 || !strings.Contains(out, "dry run") || !strings.Contains(out, "would copy: 2 accounts, 3 sessions, 3 links, 2 cached tokens") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a dry run created the target: %v", err)
	}

	open := func() store.Store {
		s, err := sqlite.Open(t.Context(), target)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	migrateTwice(t, "sqlite:", "sqlite:"+target, open)

	// A target with records of its own is refused, in a dry run too, and
	// not written.
	other := filepath.Join(dir, "other.db")
	s, err := sqlite.Open(t.Context(), other)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(t.Context(), store.Account{Username: "zed"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	before := fileHash(t, other)
	for _, dry := range []string{"--dry-run=false", "--dry-run"} {
		code, out, errOut = runCLI(t, "", "store", "migrate", "--from", "sqlite:"+path, "--to", "sqlite:"+other, dry)
		if code != 1 || !strings.Contains(errOut, "already holds 1 account, 0 sessions, 0 links, 0 cached tokens") {
			t.Errorf("%s into a non-empty target: exit %d\n%s%s", dry, code, out, errOut)
		}
	}
	if fileHash(t, other) != before {
		t.Error("a refused migration wrote to the target")
	}
}

// Bad and hostile values are refused with a message naming the fix, and
// never with the password of a URL.
func TestStoreMigrateRefuses(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "rcsso.db")
	populate(t, good)
	missing := filepath.Join(dir, "missing.db")
	emptyFile := filepath.Join(dir, "empty-url")
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	target := "sqlite:" + filepath.Join(dir, "target.db")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"unknown type", []string{"--from", "mysql://root:" + secret + "@db/rcsso", "--to", target}, []string{`unknown store type "mysql"`, "sqlite:PATH"}},
		{"no type", []string{"--from", good, "--to", target}, []string{"--from: the value names no store type", "sqlite:PATH"}},
		{"no path", []string{"--from", "sqlite:", "--to", target}, []string{"needs the database file's path"}},
		{"memory", []string{"--from", "sqlite:" + good, "--to", "memory:"}, []string{"--to memory:", "lives and dies with one rcsso process"}},
		{"sqlite in memory", []string{"--from", "sqlite::memory:", "--to", target}, []string{"in-memory database"}},
		{"sqlite dsn", []string{"--from", "sqlite:" + good + "?mode=rwc", "--to", target}, []string{"not a plain file path"}},
		{"missing source", []string{"--from", "sqlite:" + missing, "--to", target}, []string{"does not exist", "nothing to migrate"}},
		{"no --from", []string{"--to", target}, []string{"--from is missing"}},
		{"no --to", []string{"--from", "sqlite:" + good}, []string{"--to is missing"}},
		{"same store", []string{"--from", "sqlite:" + good, "--to", "sqlite:" + filepath.Join(dir, ".", "rcsso.db")}, []string{"name the same store"}},
		{"extra argument", []string{"--from", "sqlite:" + good, "--to", target, "now"}, []string{`unexpected argument "now"`}},
		{"key prefix for sqlite", []string{"--from", "sqlite:" + good, "--to", target, "--to-key-prefix", "x:"}, []string{"--to-key-prefix is for a redis: store only"}},
		{"bad redis key prefix", []string{"--from", "sqlite:" + good, "--to", "redis://127.0.0.1:1/0", "--to-key-prefix", "a b"}, []string{"key_prefix"}},
		{"rediss without URL", []string{"--from", "sqlite:" + good, "--to", "rediss:host"}, []string{"rediss://"}},
		{"postgres without URL", []string{"--from", "sqlite:" + good, "--to", "postgres:"}, []string{"needs the database's URL"}},
		{"postgres empty file name", []string{"--from", "sqlite:" + good, "--to", "postgres:@"}, []string{"needs the database's URL"}},
		{"postgres empty URL file", []string{"--from", "sqlite:" + good, "--to", "postgres:@" + emptyFile}, []string{"is empty"}},
		{"postgres missing URL file", []string{"--from", "sqlite:" + good, "--to", "postgres:@" + filepath.Join(dir, "nope")}, []string{"nope"}},
		{"postgres bad URL", []string{"--from", "sqlite:" + good, "--to", "postgres://rcsso:" + secret + "@db:notaport/rcsso"}, []string{"--to postgres:(connection string not shown)", "want postgres://"}},
		{"postgres unreachable", []string{"--from", "sqlite:" + good, "--to", "postgres://rcsso:" + secret + "@127.0.0.1:1/rcsso?connect_timeout=5&sslmode=disable"}, []string{"--to postgres://rcsso:xxxxx@127.0.0.1:1/rcsso"}},
		{"postgres keyword form", []string{"--from", "sqlite:" + good, "--to", "postgres:host=127.0.0.1 port=1 user=rcsso password=" + secret + " connect_timeout=5 sslmode=disable"}, []string{"postgres:(connection string not shown)"}},
		{"postgres password in query", []string{"--from", "sqlite:" + good, "--to", "postgres://127.0.0.1:1/rcsso?password=" + secret + "&connect_timeout=5&sslmode=disable"}, []string{"password=xxxxx"}},
		{"redis unreachable", []string{"--from", "sqlite:" + good, "--to", "redis://:" + secret + "@127.0.0.1:1/0?dial_timeout=2s"}, []string{"--to redis://:xxxxx@127.0.0.1:1/0"}},
		{"redis bad URL", []string{"--from", "sqlite:" + good, "--to", "redis://:" + secret + "@127.0.0.1:1/notadb"}, []string{"--to redis://:xxxxx@127.0.0.1:1/notadb"}},
		{"redis source missing", []string{"--from", "redis:@" + filepath.Join(dir, "nope"), "--to", target}, []string{"store.redis.url_file"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "", append([]string{"store", "migrate"}, c.args...)...)
			noSecret(t, out, errOut)
			if code == 0 {
				t.Fatalf("exit 0, want a refusal\n%s", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out+errOut, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errOut)
				}
			}
		})
	}
	for _, p := range []string{missing, filepath.Join(dir, "target.db")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused migration created %s (%v)", p, err)
		}
	}
}

func TestStoreHelp(t *testing.T) {
	code, _, errOut := runCLI(t, "", "store", "migrate", "--help")
	if code != 0 {
		t.Fatalf("store migrate --help: exit %d", code)
	}
	help := strings.Join(strings.Fields(errOut), " ")
	for _, w := range []string{"Usage: rcsso store migrate --from SRC --to DST", "sqlite:PATH", "postgres:URL", "postgres:@FILE",
		"password off", "redis:URL", "redis:@FILE", "not copied", "--force", "--dry-run", "read-only",
		"with the same store.encryption_key", "PATH.key", "-to-key-prefix"} {
		if !strings.Contains(help, w) {
			t.Errorf("store migrate --help lacks %q:\n%s", w, errOut)
		}
	}
	if code, _, errOut := runCLI(t, "", "store"); code != 2 || !strings.Contains(errOut, "Usage: rcsso store migrate") {
		t.Errorf("store without a subcommand: exit %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "", "store", "migrate"); code != 2 || !strings.Contains(errOut, "Usage: rcsso store migrate") {
		t.Errorf("store migrate without flags: exit %d %q", code, errOut)
	}
	if code, _, errOut := runCLI(t, "", "store", "copy"); code != 1 || !strings.Contains(errOut, `unknown store subcommand "copy": use migrate`) {
		t.Errorf("store copy: exit %d %q", code, errOut)
	}
}

// FuzzParseEndpoint: whatever --from or --to holds, parsing never panics
// and a password put into a URL's user info never shows in the message or
// the shown form.
func FuzzParseEndpoint(f *testing.F) {
	for _, seed := range []struct{ spec, pw string }{
		{"postgres://db:5432/rcsso", "hunter2secret"},
		{"postgres:postgres://db/rcsso?sslmode=verify-full", "s3cretPassw0rd"},
		{"redis://redis:6379/0", "anotherSecret1"},
		{"rediss://redis:6379/x", "TLSpassword99"},
		{"redis://[::1]:notaport/0", "bracketPass11"},
		{"postgres://db:notaport/x", "portPassword7"},
		{"mysql://db/x", "mysqlPassword1"},
		{"sqlite:/var/lib/rcsso/rcsso.db", "unusedPasswd1"},
		{"postgres:@/run/secrets/pg", "unusedPasswd2"},
		{"memory:", "unusedPasswd3"},
		{"", "unusedPasswd4"},
	} {
		f.Add(seed.spec, seed.pw)
	}
	f.Fuzz(func(t *testing.T, spec, pw string) {
		if len(pw) < 8 || strings.Trim(pw, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != "" || strings.Contains(spec, pw) {
			return
		}
		full := spec
		if i := strings.Index(spec, "://"); i >= 0 {
			full = spec[:i+3] + "user:" + pw + "@" + spec[i+3:]
		}
		for _, prefix := range []string{"", "redis-prefix:"} {
			e, err := parseEndpoint("to", full, prefix)
			if strings.Contains(e.shown, pw) {
				t.Fatalf("parseEndpoint(%q) shows the password: %q", full, e.shown)
			}
			if err != nil && strings.Contains(err.Error(), pw) {
				t.Fatalf("parseEndpoint(%q) error shows the password: %v", full, err)
			}
		}
	})
}

// A done context stops the migration before anything is copied.
func TestStoreMigrateCanceled(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "rcsso.db")
	populate(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"store", "migrate", "--from", "sqlite:" + path, "--to", "sqlite:" + filepath.Join(dir, "t.db")}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "canceled") {
		t.Errorf("exit %d\n%s%s", code, out.String(), errb.String())
	}
}
