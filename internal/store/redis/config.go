package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"unicode"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// DefaultKeyPrefix starts every key and the change feed channel when
// Config.KeyPrefix is empty.
const DefaultKeyPrefix = "rcsso:"

// maxKeyPrefix bounds Config.KeyPrefix, in bytes.
const maxKeyPrefix = 64

// Config is the store.redis block of rcsso's configuration.
type Config struct {
	// URL is the server: redis://[[user]:password@]host[:port][/db][?options]
	// or rediss://… for TLS (verified against the system roots, server name
	// = host). Port 6379 and database 0 are the defaults; options are
	// go-redis's (dial_timeout=5s, read_timeout=3s, pool_size=…). It holds
	// the password: prefer URLFile.
	URL string `koanf:"url"`
	// URLFile is a file holding the URL (trailing newlines trimmed), read
	// by Validate and Open. Set exactly one of URL and URLFile.
	URLFile string `koanf:"url_file"`
	// KeyPrefix starts every key rcsso writes and its change feed channel;
	// DefaultKeyPrefix ("rcsso:") when empty. Every rcsso instance of one
	// deployment uses the same prefix; deployments sharing a database use
	// different ones. Printable ASCII without spaces, at most 64 bytes.
	KeyPrefix string `koanf:"key_prefix"`
}

// Validate checks the block without connecting: exactly one of url and
// url_file, a readable url_file, a redis:// or rediss:// URL that go-redis
// accepts, and a usable key_prefix. Messages name the key
// (store.redis.url, store.redis.url_file, store.redis.key_prefix) and the
// fix; they never contain the password.
func (c Config) Validate() error {
	_, err := c.options()
	return err
}

// resolveURL returns the URL from URL or URLFile.
func (c Config) resolveURL() (string, error) {
	switch {
	case c.URL != "" && c.URLFile != "":
		return "", errors.New("store.redis.url and store.redis.url_file are both set: keep one (url_file keeps the password out of the configuration)")
	case c.URL != "":
		return c.URL, nil
	case c.URLFile != "":
		b, err := os.ReadFile(c.URLFile)
		if err != nil {
			return "", fmt.Errorf("store.redis.url_file: %v: name a readable file holding the URL, e.g. redis://:password@redis:6379/0", err)
		}
		u := strings.TrimRight(string(b), "\r\n")
		if u == "" {
			return "", fmt.Errorf("store.redis.url_file: %s is empty: write the URL into it, e.g. redis://:password@redis:6379/0", c.URLFile)
		}
		return u, nil
	default:
		return "", errors.New("store.redis.url: the redis store needs the server's URL, e.g. redis://:password@redis:6379/0 or rediss://… for TLS (or store.redis.url_file naming a file that holds it)")
	}
}

// options validates c and turns it into go-redis options, with rcsso's
// choices applied on top of the URL's.
func (c Config) options() (*goredis.Options, error) {
	if err := checkPrefix(c.KeyPrefix); err != nil {
		return nil, err
	}
	raw, err := c.resolveURL()
	if err != nil {
		return nil, err
	}
	key := "store.redis.url"
	if c.URL == "" {
		key = "store.redis.url_file"
	}
	opt, err := parseURL(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return opt, nil
}

// parseURL parses a redis:// or rediss:// URL with goredis.ParseURL. Its
// errors never contain the URL's password: url.Parse quotes the whole URL
// in its errors, so those are replaced by a fixed text.
func parseURL(raw string) (*goredis.Options, error) {
	const shape = "write it as redis://[user:password@]host[:port][/db] or rediss://… (percent-encode reserved characters in the password)"
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && !strings.Contains(raw, "@") {
			return nil, fmt.Errorf("not a URL (%v): %s", ue.Err, shape)
		}
		return nil, fmt.Errorf("not a URL: %s", shape)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("scheme %q: use redis:// or rediss:// (TLS)", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("no host: %s", shape)
	}
	if u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("unexpected URL parts: %s", shape)
	}
	opt, err := goredis.ParseURL(raw)
	if err != nil {
		return nil, errors.New(redact(err.Error(), u) + ": " + shape)
	}
	if opt.TLSConfig != nil && opt.TLSConfig.InsecureSkipVerify {
		return nil, errors.New("skip_verify turns off the TLS certificate check: remove it and let the system trust the server's CA (install it, or point SSL_CERT_FILE at it)")
	}
	if opt.DB < 0 {
		return nil, fmt.Errorf("database %d: use a database number from 0 up", opt.DB)
	}
	return opt, nil
}

// redact removes u's password from s.
func redact(s string, u *url.URL) string {
	if u == nil || u.User == nil {
		return s
	}
	if p, ok := u.User.Password(); ok && p != "" {
		s = strings.ReplaceAll(s, p, "xxxxx")
		s = strings.ReplaceAll(s, url.PathEscape(p), "xxxxx")
		s = strings.ReplaceAll(s, url.QueryEscape(p), "xxxxx")
	}
	return s
}

func checkPrefix(p string) error {
	if len(p) > maxKeyPrefix {
		return fmt.Errorf("store.redis.key_prefix: %d bytes is too long: use at most %d, e.g. %q", len(p), maxKeyPrefix, DefaultKeyPrefix)
	}
	for _, r := range p {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' {
			return fmt.Errorf("store.redis.key_prefix: %q: use printable ASCII without spaces, e.g. %q", p, DefaultKeyPrefix)
		}
	}
	return nil
}

// Open connects to the server, checks that it answers and runs Redis 7.0
// or later (or Valkey), claims the key prefix for data layout 1, and
// returns the Store. ctx bounds opening only. Errors are prefixed
// "redis: open:" and never contain the password. log (nil: discard) gets
// one line at open and the change feed's interruptions.
func (c Config) Open(ctx context.Context, log *slog.Logger) (*Store, error) {
	return c.open(ctx, log, nil, false)
}

// OpenReadOnly connects like Open but writes nothing: it does not claim
// the key prefix. A prefix under which rcsso never wrote (no layout key)
// fails with an error wrapping store.ErrNoStore; another layout is refused.
// Redis cannot refuse the store's writes itself: the caller only reads
// (rcsso store migrate reads its source with Export).
func (c Config) OpenReadOnly(ctx context.Context, log *slog.Logger) (*Store, error) {
	return c.open(ctx, log, nil, true)
}

// open is Open with a hook that adjusts the client options (tests: a TLS
// root pool).
func (c Config) open(ctx context.Context, log *slog.Logger, adjust func(*goredis.Options), readOnly bool) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opt, err := c.options()
	if err != nil {
		return nil, fmt.Errorf("redis: open: %w", err)
	}
	// Each command runs once: after a connection breaks mid-command nobody
	// knows whether the server applied it, and a blind retry could apply
	// INCRBY twice or turn a first UseOnce into a refusal. The caller sees
	// the error instead. Broken pooled connections are detected before
	// use, so a server restart costs no spurious errors.
	opt.MaxRetries = -1
	// ctx deadlines bound socket reads and writes too.
	opt.ContextTimeoutEnabled = true
	if opt.ClientName == "" {
		opt.ClientName = "rcsso"
	}
	// Redis 7.0 knows neither CLIENT SETINFO nor maintenance notifications.
	opt.DisableIdentity = true
	opt.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	if opt.TLSConfig != nil && opt.TLSConfig.MinVersion < tls.VersionTLS12 {
		opt.TLSConfig.MinVersion = tls.VersionTLS12
	}
	if adjust != nil {
		adjust(opt)
	}
	prefix := c.KeyPrefix
	if prefix == "" {
		prefix = DefaultKeyPrefix
	}
	s := newStore(goredis.NewClient(opt), prefix, log)
	version, err := s.init(ctx, readOnly)
	if err != nil {
		err = fmt.Errorf("redis: open: %s (db %d): %w", opt.Addr, opt.DB, err)
		return nil, errors.Join(err, s.Close())
	}
	log.Info("store: redis ready", "addr", opt.Addr, "db", opt.DB, "tls", opt.TLSConfig != nil,
		"server_version", version, "key_prefix", prefix)
	return s, nil
}

// LogLibrary sends go-redis's own messages (failed dials while the server
// is away, and the like; they carry addresses, never passwords) to log at
// level Warn with component=go-redis, instead of go-redis's default of
// unstructured lines on standard error. The setting is process-wide: call
// it once at startup.
func LogLibrary(log *slog.Logger) {
	goredis.SetLogger(libraryLogger{log})
}

type libraryLogger struct{ log *slog.Logger }

func (l libraryLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.WarnContext(ctx, strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "), "component", "go-redis")
}
