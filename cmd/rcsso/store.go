package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/postgres"
	"github.com/rcsso/rcsso/internal/store/redis"
	"github.com/rcsso/rcsso/internal/store/sqlite"
)

func runStore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("store", "store migrate --from SRC --to DST [--dry-run] [--force]", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return errUsage
	}
	if rest[0] == "migrate" {
		return storeMigrate(ctx, rest[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown store subcommand %q: use migrate (rcsso store migrate --help)", rest[0])
}

const migrateHelp = `Usage: rcsso store migrate --from SRC --to DST [--dry-run] [--force]

Copies rcsso's long-lived state from one store to another, e.g. from the
default SQLite file to PostgreSQL before running several rcsso instances:
local accounts, unexpired website sessions, links (website subject to
Rocket.Chat user, every field) and cached Rocket.Chat tokens. Single-use
codes and keys, counters and leases are short-lived: they are not copied,
and rcsso makes them again as needed.

SRC and DST:
  sqlite:PATH       an SQLite database file (store.type sqlite, store.path)
  postgres:URL      postgres://user:password@host:5432/db?sslmode=verify-full
  postgres:@FILE    the PostgreSQL URL read from FILE: keeps the password off
                    the command line (and out of ps and shell history)
  redis:URL         redis://[user:password@]host:6379/0, or rediss://… (TLS)
  redis:@FILE       the Redis URL read from FILE
A bare postgres://…, postgresql://…, redis://… or rediss://… URL works too.
A memory store lives and dies with one rcsso process: it cannot be migrated.

Stop every rcsso that uses the source and back the source up first. The
source is opened read-only: nothing is written to it (SQLite may create the
empty PATH-wal and PATH-shm files it reads through), so the command is safe
to interrupt. The target must hold no rcsso records unless --force is given;
with --force, records with the same key are replaced and others are kept, so
running the command again gives the same result.

Cached tokens and link secrets are copied as the ciphertext they are,
sealed with store.encryption_key: start rcsso on the target with the same
store.encryption_key. An SQLite store without store.encryption_key kept its
generated key in PATH.key: use that key on the new deployment.

Flags:
`

func storeMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rcsso store migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, migrateHelp)
		fs.PrintDefaults()
	}
	from := fs.String("from", "", "the store to copy from: sqlite:PATH, postgres:URL, postgres:@FILE, redis:URL or redis:@FILE")
	to := fs.String("to", "", "the store to copy to, in the same forms")
	fromPrefix := fs.String("from-key-prefix", "", "redis source only: its store.redis.key_prefix (default \""+redis.DefaultKeyPrefix+"\")")
	toPrefix := fs.String("to-key-prefix", "", "redis target only: its store.redis.key_prefix (default \""+redis.DefaultKeyPrefix+"\")")
	dryRun := fs.Bool("dry-run", false, "read the source and check the target, write nothing")
	force := fs.Bool("force", false, "write into a target that already holds records (same keys are replaced, others kept)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: rcsso store migrate takes only flags (rcsso store migrate --help)", fs.Arg(0))
	}
	if *from == "" && *to == "" {
		fs.Usage()
		return errUsage
	}
	src, err := parseEndpoint("from", *from, *fromPrefix)
	if err != nil {
		return err
	}
	dst, err := parseEndpoint("to", *to, *toPrefix)
	if err != nil {
		return err
	}
	if src.id == dst.id {
		return fmt.Errorf("--from and --to name the same store (%s): give the store to copy to", src.shown)
	}
	m := migration{src: src, dst: dst, dryRun: *dryRun, force: *force, out: stdout, log: slog.New(slog.DiscardHandler)}
	return m.run(ctx)
}

// endpoint is a parsed --from or --to.
type endpoint struct {
	flag  string // "from" or "to"
	shown string // for messages: no password
	id    string // equal for the same store spelled the same way
	cfg   store.Config
	// keyFile is the key an SQLite store generated ("<path>.key"); empty
	// for other stores.
	keyFile string
}

const endpointForms = "sqlite:PATH, postgres:URL (or postgres:@FILE) or redis:URL (or redis:@FILE)"

// parseEndpoint reads SRC or DST. Its errors never repeat a URL or a
// password: only the store type, a file path, or the URL with its
// password replaced by xxxxx.
func parseEndpoint(flagName, spec, keyPrefix string) (endpoint, error) {
	e := endpoint{flag: flagName}
	if spec == "" {
		return e, fmt.Errorf("--%s is missing: give %s (rcsso store migrate --help)", flagName, endpointForms)
	}
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok {
		return e, fmt.Errorf("--%s: the value names no store type: write %s", flagName, endpointForms)
	}
	kind = strings.ToLower(kind)
	switch kind {
	case "postgres", "postgresql":
		if strings.HasPrefix(rest, "//") {
			rest = spec // postgres://…: the value is the URL
		}
		kind = "postgres"
	case "redis", "rediss":
		if strings.HasPrefix(rest, "//") {
			rest = spec // redis://…, rediss://…
		} else if kind == "rediss" {
			return e, fmt.Errorf("--%s: write rediss://… or redis:URL", flagName)
		}
		kind = "redis"
	}
	if keyPrefix != "" && kind != "redis" {
		return e, fmt.Errorf("--%s-key-prefix is for a redis: store only", flagName)
	}
	switch kind {
	case "sqlite":
		switch {
		case rest == "":
			return e, fmt.Errorf("--%s sqlite: needs the database file's path, e.g. sqlite:/var/lib/rcsso/rcsso.db", flagName)
		case rest == sqlite.MemoryPath:
			return e, fmt.Errorf("--%s sqlite:%s: an in-memory database lives and dies with one process: give the database file's path", flagName, sqlite.MemoryPath)
		case strings.ContainsRune(rest, '?') || strings.HasPrefix(rest, "file:"):
			return e, fmt.Errorf("--%s sqlite:%s: not a plain file path (no '?', no file: prefix); give one such as sqlite:/var/lib/rcsso/rcsso.db", flagName, rest)
		}
		abs, err := filepath.Abs(rest)
		if err != nil {
			return e, fmt.Errorf("--%s sqlite:%s: %w", flagName, rest, err)
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		c := sqlite.Config{Path: rest}
		e.shown, e.id, e.cfg, e.keyFile = "sqlite:"+rest, "sqlite:"+abs, c, c.KeyPath()
	case "postgres":
		var c postgres.Config
		c.URL, c.URLFile, e.shown = urlOrFile("postgres", rest)
		if c.URL == "" && c.URLFile == "" {
			return e, fmt.Errorf("--%s postgres: needs the database's URL, e.g. postgres://rcsso@db:5432/rcsso?sslmode=verify-full, or postgres:@FILE naming a file that holds it", flagName)
		}
		e.id, e.cfg = "postgres:"+c.URL+"@"+absOr(c.URLFile), postgres.StoreConfig{Postgres: c}
	case "redis":
		c := redis.Config{KeyPrefix: keyPrefix}
		c.URL, c.URLFile, e.shown = urlOrFile("redis", rest)
		if c.URL == "" && c.URLFile == "" {
			return e, fmt.Errorf("--%s redis: needs the server's URL, e.g. redis://:password@redis:6379/0, or redis:@FILE naming a file that holds it", flagName)
		}
		if keyPrefix != "" {
			e.shown += " (key prefix " + keyPrefix + ")"
		}
		if keyPrefix == "" {
			keyPrefix = redis.DefaultKeyPrefix
		}
		e.id, e.cfg = "redis:"+c.URL+"@"+absOr(c.URLFile)+" "+keyPrefix, redis.StoreConfig{Redis: c}
	case "memory":
		return e, fmt.Errorf("--%s memory: a memory store lives and dies with one rcsso process: there is nothing to migrate from or to; use %s", flagName, endpointForms)
	default:
		return e, fmt.Errorf("--%s: unknown store type %q: use %s", flagName, kind, endpointForms)
	}
	if err := e.cfg.Validate(); err != nil {
		return e, fmt.Errorf("--%s %s: %w", flagName, e.shown, err)
	}
	return e, nil
}

// urlOrFile splits the part after "postgres:" or "redis:": "@FILE" names
// a file holding the URL, anything else is the URL. shown is what
// messages print: the file, or the URL without its password.
func urlOrFile(kind, rest string) (u, file, shown string) {
	if f, ok := strings.CutPrefix(rest, "@"); ok {
		return "", f, kind + ":@" + f
	}
	return rest, "", redactURL(kind, rest)
}

// redactURL is a connection URL fit for messages: the password in its
// user info and in query parameters whose name holds "pass" replaced by
// xxxxx. A value that is not a URL (libpq's "host=… password=…") is not
// shown at all.
func redactURL(kind, raw string) string {
	hidden := kind + ":(connection string not shown)"
	u, err := url.Parse(raw)
	if err != nil || !strings.Contains(raw, "://") {
		return hidden
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return hidden
	}
	changed := false
	for k := range q {
		if strings.Contains(strings.ToLower(k), "pass") {
			q[k], changed = []string{"xxxxx"}, true
		}
	}
	if changed {
		u.RawQuery = q.Encode()
	}
	if u.Fragment != "" {
		u.Fragment = "xxxxx"
	}
	return u.String()
}

func absOr(path string) string {
	if path == "" {
		return ""
	}
	if abs, err := filepath.Abs(path); err == nil {
		return abs
	}
	return path
}

// counts is how many records of each long-lived kind a store holds or a
// migration copied.
type counts struct {
	accounts, sessions, links, tokens int
}

func (c counts) empty() bool { return c == counts{} }

func (c counts) String() string {
	return fmt.Sprintf("%s, %s, %s, %s", plural(c.accounts, "account"), plural(c.sessions, "session"),
		plural(c.links, "link"), plural(c.tokens, "cached token"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// count enumerates every record of st.
func count(ctx context.Context, st store.Store) (counts, error) {
	ex, ok := st.(store.Exporter)
	if !ok {
		return counts{}, errors.New("the store cannot list its records")
	}
	var c counts
	err := ex.Export(ctx, store.Visitor{
		Account: func(store.Account) error { c.accounts++; return nil },
		Session: func(store.Session) error { c.sessions++; return nil },
		Link:    func(store.Link) error { c.links++; return nil },
		Token:   func(store.Token) error { c.tokens++; return nil },
	})
	return c, err
}

// migration is one run of rcsso store migrate.
type migration struct {
	src, dst      endpoint
	dryRun, force bool
	out           io.Writer
	log           *slog.Logger
}

const skipped = "not copied (short-lived, rcsso makes them again as needed): single-use codes and keys, counters, leases"

func (m migration) run(ctx context.Context) error {
	if m.dryRun {
		fmt.Fprintln(m.out, "dry run: nothing is written")
	}
	fmt.Fprintf(m.out, "from: %s\nto:   %s\n", m.src.shown, m.dst.shown)

	opener, ok := m.src.cfg.(store.ReadOnlyOpener)
	if !ok {
		return fmt.Errorf("--from %s: this store type cannot be opened read-only", m.src.shown)
	}
	src, err := opener.OpenReadOnly(ctx, m.log)
	if errors.Is(err, store.ErrNoStore) {
		return fmt.Errorf("--from %s: %w (nothing to migrate: check the path or URL)", m.src.shown, err)
	}
	if err != nil {
		return fmt.Errorf("--from %s: %w", m.src.shown, err)
	}
	defer src.Close()
	srcEx, ok := src.(store.Exporter)
	if !ok {
		return fmt.Errorf("--from %s: this store type cannot list its records", m.src.shown)
	}

	dst, err := m.openTarget(ctx)
	if err != nil {
		return err
	}
	if dst != nil {
		defer dst.Close()
		held, err := count(ctx, dst)
		if err != nil {
			return fmt.Errorf("--to %s: %w", m.dst.shown, err)
		}
		switch {
		case held.empty():
			fmt.Fprintln(m.out, "target: empty")
		case !m.force:
			return fmt.Errorf("--to %s already holds %s: copy into an empty store, or give --force to write over records with the same keys (others are kept)", m.dst.shown, held)
		default:
			fmt.Fprintf(m.out, "target: holds %s; --force: records with the same keys are replaced\n", held)
		}
	}

	if m.dryRun {
		c, err := count(ctx, src)
		if err != nil {
			return fmt.Errorf("--from %s: %w", m.src.shown, err)
		}
		fmt.Fprintf(m.out, "would copy: %s\n%s\n", c, skipped)
		m.keyNote()
		return nil
	}

	copied, expiries, err := m.copy(ctx, srcEx, dst)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted after copying %s; the source is unchanged: run the same command with --force to finish", copied)
		}
		return fmt.Errorf("%w\nafter copying %s; the source is unchanged: fix the cause, then run the same command with --force to finish", err, copied)
	}
	fmt.Fprintf(m.out, "copied: %s\n", copied)
	held, err := count(ctx, dst)
	if err != nil {
		return fmt.Errorf("--to %s: counting what it holds after the copy: %w", m.dst.shown, err)
	}
	fmt.Fprintf(m.out, "target now holds: %s\n%s\n", held, skipped)
	live := 0
	for _, at := range expiries {
		if at.After(time.Now()) {
			live++
		}
	}
	if held.accounts < copied.accounts || held.sessions < live || held.links < copied.links || held.tokens < copied.tokens {
		return fmt.Errorf("--to %s holds fewer records than were copied (%s, copied %s): something else deletes records there; stop it and run the same command with --force", m.dst.shown, held, copied)
	}
	m.keyNote()
	return nil
}

// openTarget opens DST to write it; in a dry run read-only (nil when it
// holds no rcsso store yet).
func (m migration) openTarget(ctx context.Context) (store.Store, error) {
	if !m.dryRun {
		dst, err := m.dst.cfg.Open(ctx, m.log)
		if err != nil {
			return nil, fmt.Errorf("--to %s: %w", m.dst.shown, err)
		}
		return dst, nil
	}
	opener, ok := m.dst.cfg.(store.ReadOnlyOpener)
	if !ok {
		return nil, fmt.Errorf("--to %s: this store type cannot be opened read-only", m.dst.shown)
	}
	dst, err := opener.OpenReadOnly(ctx, m.log)
	if errors.Is(err, store.ErrNoStore) {
		fmt.Fprintln(m.out, "target: no rcsso store there yet (it is created when the migration runs)")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("--to %s: %w", m.dst.shown, err)
	}
	return dst, nil
}

// copy writes every record of src into dst through the ordinary write
// methods. It returns what it copied (also after a failure) and the
// copied sessions' expiry times.
func (m migration) copy(ctx context.Context, src store.Exporter, dst store.Store) (counts, []time.Time, error) {
	var c counts
	var expiries []time.Time
	err := src.Export(ctx, store.Visitor{
		Account: func(a store.Account) error {
			err := dst.CreateAccount(ctx, a)
			if errors.Is(err, store.ErrConflict) && m.force {
				if err = dst.DeleteAccount(ctx, a.Username); err == nil {
					err = dst.CreateAccount(ctx, a)
				}
			}
			if err != nil {
				return fmt.Errorf("--to %s: copying local account %q: %w", m.dst.shown, a.Username, err)
			}
			c.accounts++
			return nil
		},
		Session: func(s store.Session) error {
			if err := dst.PutSession(ctx, s); err != nil {
				return fmt.Errorf("--to %s: copying a website session of subject %q: %w", m.dst.shown, s.Subject, err)
			}
			c.sessions++
			expiries = append(expiries, s.ExpiresAt)
			return nil
		},
		Link: func(l store.Link) error {
			_, err := dst.UpdateLink(ctx, l.Subject, func(old *store.Link) error {
				*old = l
				return nil
			})
			if errors.Is(err, store.ErrLinkTaken) {
				return fmt.Errorf("--to %s: copying the link of subject %q: %w: the target links that Rocket.Chat user to another person; migrate into an empty store", m.dst.shown, l.Subject, err)
			}
			if err != nil {
				return fmt.Errorf("--to %s: copying the link of subject %q: %w", m.dst.shown, l.Subject, err)
			}
			c.links++
			return nil
		},
		Token: func(t store.Token) error {
			if err := dst.PutToken(ctx, t); err != nil {
				return fmt.Errorf("--to %s: copying the cached token of subject %q: %w", m.dst.shown, t.Subject, err)
			}
			c.tokens++
			return nil
		},
	})
	return c, expiries, err
}

// keyNote tells the operator that tokens and link secrets need the same
// store.encryption_key on the target, and where an SQLite source kept its
// generated key.
func (m migration) keyNote() {
	fmt.Fprintln(m.out, "key: cached tokens and link secrets are sealed with store.encryption_key: rcsso on the target must use the same store.encryption_key")
	if m.src.keyFile == "" {
		return
	}
	if _, err := os.Stat(m.src.keyFile); err == nil {
		fmt.Fprintf(m.out, "     the SQLite store generated its key into %s (used when store.encryption_key is not set): on the new deployment set store.encryption_key_file to a copy of that file\n", m.src.keyFile)
	}
}
