package redis

import (
	"bytes"
	"crypto/tls"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/testing/redistest"
)

const secret = "Sup3r-s3cret_pw"

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "url")
	if err := os.WriteFile(good, []byte("redis://:"+secret+"@redis:6379/2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("http://:"+secret+"@redis/"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		cfg  Config
		want string // "" = valid; else substrings of the message, ';'-separated
	}{
		{Config{URL: "redis://localhost"}, ""},
		{Config{URL: "redis://:" + secret + "@redis:6379/15?dial_timeout=2s&pool_size=20"}, ""},
		{Config{URL: "rediss://rcsso:" + secret + "@redis.example.org:6380/1"}, ""},
		{Config{URL: "redis://[::1]:6379"}, ""},
		{Config{URLFile: good}, ""},
		{Config{URL: "redis://h", KeyPrefix: "team-a:rcsso:"}, ""},
		{Config{}, "store.redis.url;redis://"},
		{Config{URL: "redis://h", URLFile: good}, "store.redis.url and store.redis.url_file are both set;keep one"},
		{Config{URLFile: filepath.Join(dir, "missing")}, "store.redis.url_file;no such file"},
		{Config{URLFile: empty}, "store.redis.url_file;is empty"},
		{Config{URLFile: bad}, "store.redis.url_file;scheme \"http\""},
		{Config{URL: "http://:" + secret + "@redis/"}, "store.redis.url;use redis:// or rediss://"},
		{Config{URL: "unix:///run/redis.sock"}, "store.redis.url;use redis:// or rediss://"},
		{Config{URL: "redis://"}, "store.redis.url;no host"},
		{Config{URL: "redis:///0"}, "store.redis.url;no host"},
		{Config{URL: "redis://:" + secret + "@redis/zero"}, "store.redis.url;database number"},
		{Config{URL: "redis://:" + secret + "@redis/0/1"}, "store.redis.url;URL path"},
		{Config{URL: "redis://:" + secret + "@redis:port/0"}, "store.redis.url;not a URL;percent-encode"},
		{Config{URL: "redis://:" + secret + "%zz@redis/0"}, "store.redis.url;not a URL"},
		{Config{URL: "redis://:" + secret + "@redis/0?bogus=" + secret}, "store.redis.url;unexpected option: bogus"},
		{Config{URL: "redis://:" + secret + "@redis/0?dial_timeout=" + secret}, "store.redis.url;dial_timeout"},
		{Config{URL: "rediss://:" + secret + "@redis/0?skip_verify=true"}, "store.redis.url;skip_verify;SSL_CERT_FILE"},
		{Config{URL: "redis://:" + secret + "@redis/0#frag"}, "store.redis.url;unexpected URL parts"},
		{Config{URL: "redis://h", KeyPrefix: "rcsso "}, "store.redis.key_prefix;printable ASCII"},
		{Config{URL: "redis://h", KeyPrefix: "rcsso\n"}, "store.redis.key_prefix;printable ASCII"},
		{Config{URL: "redis://h", KeyPrefix: "ärcsso:"}, "store.redis.key_prefix;printable ASCII"},
		{Config{URL: "redis://h", KeyPrefix: strings.Repeat("x", 65)}, "store.redis.key_prefix;at most 64"},
	} {
		err := c.cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", c.cfg, err)
		case c.want != "" && err == nil:
			t.Errorf("Validate(%+v) = nil, want %q", c.cfg, c.want)
		case err != nil:
			for _, w := range strings.Split(c.want, ";") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate(%+v) = %q, want it to contain %q", c.cfg, err, w)
				}
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), url.QueryEscape(secret)) {
				t.Errorf("Validate(%+v) = %q: it contains the password", c.cfg, err)
			}
		}
	}
}

// FuzzValidate: whether a URL is valid does not depend on its password,
// and the message never contains the password (in any escaping) unless
// the same URL with another password gives a message that contains it too
// (then it is text from elsewhere in the URL). A password is any string,
// escaped as url.URL does.
func FuzzValidate(f *testing.F) {
	for _, seed := range [][5]string{
		{"redis", secret, "redis:6379", "/0", "dial_timeout=1s"},
		{"rediss", "p@ss:w/rd?#%", "h", "", ""},
		{"redis", secret, "redis:port", "/0", ""},
		{"redis", secret, "h", "/x", "bogus=" + secret},
		{"http", secret, "h", "/0", ""},
		{"redis", secret, "[::1", "", ""},
		{"redis", "x", "h", "/0/1", "db=q"},
		{"rediss", secret, "h", "", "skip_verify=maybe"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3], seed[4])
	}
	f.Fuzz(func(t *testing.T, scheme, password, host, path, query string) {
		if password == "" {
			return
		}
		raw := func(pw string) string {
			u := url.URL{Scheme: scheme, User: url.UserPassword("", pw), Host: host, Path: path, RawQuery: query}
			return u.String()
		}
		msg := func(pw string) string {
			if err := (Config{URL: raw(pw)}).Validate(); err != nil {
				return err.Error()
			}
			return ""
		}
		got, other := msg(password), msg("other-password")
		if (got == "") != (other == "") {
			t.Fatalf("validity depends on the password:\n%q\n%q", got, other)
		}
		for _, form := range []string{password, url.PathEscape(password), url.QueryEscape(password), url.UserPassword("", password).String()} {
			if strings.Contains(got, form) && !strings.Contains(other, form) {
				t.Fatalf("the message contains the password %q: %q", form, got)
			}
		}
		// Any string at all: no panic.
		_ = Config{URL: scheme + "://" + password + host + path + query}.Validate()
	})
}

// TestOpenErrors: failures to open name the server and the cause and
// never the password.
func TestOpenErrors(t *testing.T) {
	srv := redistest.StartServer(t, redistest.Options{Password: secret})
	ctx := t.Context()
	wrong := strings.Replace(srv.URL(), secret, "wr0ng-"+secret, 1)
	for _, c := range []struct {
		name, url, want string
	}{
		{"wrong password", wrong, "WRONGPASS"},
		{"no password", strings.Replace(srv.URL(), ":"+secret+"@", "", 1), "NOAUTH"},
		{"nobody listening", "redis://:" + secret + "@127.0.0.1:1/0?dial_timeout=200ms", "127.0.0.1:1"},
	} {
		_, err := Config{URL: c.url}.Open(ctx, nil)
		if err == nil || !strings.HasPrefix(err.Error(), "redis: open: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Open = %v, want a \"redis: open: …%s…\" error", c.name, err, c.want)
		} else if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: Open = %q: it contains the password", c.name, err)
		}
	}

	// The URL may come from a file.
	file := filepath.Join(t.TempDir(), "redis-url")
	if err := os.WriteFile(file, []byte(srv.URL()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, Config{URLFile: file})
	// A prefix holding another data layout is refused.
	if err := s.rdb.Set(ctx, "other:layout", "2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := Config{URLFile: file, KeyPrefix: "other:"}.Open(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), `layout "2"`) || !strings.Contains(err.Error(), "store.redis.key_prefix") {
		t.Fatalf("Open on a prefix with layout 2 = %v, want a refusal naming the layout and key_prefix", err)
	}
}

// TestTLS: a rediss:// URL talks TLS and verifies the server's
// certificate.
func TestTLS(t *testing.T) {
	srv := redistest.StartServer(t, redistest.Options{TLS: true})
	ctx := t.Context()
	cfg := Config{URL: srv.URL()}
	if _, err := cfg.Open(ctx, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Open without trusting the test CA = %v, want a certificate error", err)
	}
	s, err := cfg.open(ctx, nil, func(o *goredis.Options) { o.TLSConfig.RootCAs = srv.RootCAs() }, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.rdb.Options().TLSConfig.MinVersion < tls.VersionTLS12 || s.rdb.Options().TLSConfig.InsecureSkipVerify {
		t.Fatalf("TLS config %+v", s.rdb.Options().TLSConfig)
	}
	want := store.Token{Subject: "local:alice", Ciphertext: []byte{0, 1, 2}, MintedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := s.PutToken(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetToken(ctx, "local:alice")
	if err != nil || !bytes.Equal(got.Ciphertext, want.Ciphertext) || !got.MintedAt.Equal(want.MintedAt) {
		t.Fatalf("GetToken over TLS = %+v, %v", got, err)
	}
}

// TestErrorsOmitKeys: errors name the operation, not the record's key.
func TestErrorsOmitKeys(t *testing.T) {
	s := open(t, Config{URL: redistest.Start(t)})
	const id = "c2Vzc2lvbi1pZC1oYXNoLXNlY3JldA"
	_, err := s.GetSession(t.Context(), id)
	if err == nil || strings.Contains(err.Error(), id) || err.Error() != "redis: get session: store: not found" {
		t.Fatalf("GetSession error = %v", err)
	}
	_, err = s.ConsumeCode(t.Context(), id)
	if err == nil || strings.Contains(err.Error(), id) {
		t.Fatalf("ConsumeCode error = %v", err)
	}
}

// FuzzRecords: records with arbitrary bytes in every string (invalid
// UTF-8, '&', '=', '%', NUL) decode to exactly what was encoded.
func FuzzRecords(f *testing.F) {
	f.Add("local:alice", "https://www.example.org", []byte(`{"name":"A"}`), "$argon2id$v=19$m=65536", int64(1700000000123))
	f.Add("a&b=c%zz\x00", "\xff\xfe", []byte{0, 0xff}, "", int64(-1))
	f.Add("", "", []byte(nil), "=&;", int64(0))
	f.Fuzz(func(t *testing.T, subject, origin string, profile []byte, hash string, msec int64) {
		at := time.UnixMilli(msec).UTC()
		c := store.Code{Hash: "h", Subject: subject, Origin: origin, ExpiresAt: at, Profile: profile}
		got, err := decodeCode("h", encodeCode(c))
		if err != nil || got.Subject != subject || got.Origin != origin || !bytes.Equal(got.Profile, profile) || !got.ExpiresAt.Equal(at) {
			t.Fatalf("code round trip: %+v, %v; want %+v", got, err, c)
		}
		a := store.Account{Username: "u", PasswordHash: hash, Name: subject, Email: origin, CreatedAt: at}
		gotA, err := decodeAccount("u", encodeAccount(a))
		if err != nil || gotA != a {
			t.Fatalf("account round trip: %+v, %v; want %+v", gotA, err, a)
		}
		roles := []string{subject, origin, hash}
		m := map[string]string{"roles": url.Values{"r": roles}.Encode(), "expires_at": ms(at)}
		sess, err := decodeSession("id", m)
		if err != nil || len(sess.Roles) != 3 || sess.Roles[0] != subject || sess.Roles[1] != origin || sess.Roles[2] != hash {
			t.Fatalf("roles round trip: %q, %v", sess.Roles, err)
		}
		// A stored record that is not ours fails cleanly.
		_, _ = decodeCode("h", subject)
		_, _ = decodeAccount("u", origin)
		_, _ = decodeSession("id", map[string]string{"roles": subject, "created_at": origin})
		_, _ = decodeLink("s", map[string]string{"updated_at": subject})
	})
}

// TestLogLibrary: go-redis's own messages go to the slog logger given.
func TestLogLibrary(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	LogLibrary(slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil)))
	defer LogLibrary(slog.New(slog.DiscardHandler)) // quiet for the other tests
	_, err := Config{URL: "redis://127.0.0.1:1/0?dial_timeout=100ms"}.Open(t.Context(), nil)
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if out := buf.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, "component=go-redis") || !strings.Contains(out, "127.0.0.1:1") {
		t.Fatalf("go-redis logged %q, want a WARN line with component=go-redis naming the address", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
