package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rcsso/rcsso/internal/testing/pgtest"
)

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none: valid
	}{
		{"url", Config{URL: "postgres://rcsso:pw@db:5432/rcsso?sslmode=verify-full"}, nil},
		{"keyword form", Config{URL: "host=db user=rcsso dbname=rcsso"}, nil},
		{"url file", Config{URLFile: "/run/secrets/pg"}, nil},
		{"neither", Config{}, []string{"store.postgres.url", "url_file", "postgres://"}},
		{"both", Config{URL: "postgres://db/x", URLFile: "/f"}, []string{"store.postgres.url and store.postgres.url_file are both set", "keep one"}},
		{"bad port", Config{URL: "postgres://rcsso:hunter2secret@db:notaport/rcsso"}, []string{"store.postgres.url:", "want postgres://"}},
		{"bad param", Config{URL: "postgres://rcsso:hunter2secret@db/rcsso?pool_max_conns=lots"}, []string{"store.postgres.url:", "pool_max_conns"}},
		{"bad sslmode", Config{URL: "postgres://rcsso:hunter2secret@db/rcsso?sslmode=sometimes"}, []string{"store.postgres.url:", "sslmode"}},
		{"keyword password", Config{URL: "host=db password='hunter2secret' port=x"}, []string{"store.postgres.url:"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2secret") {
				t.Errorf("Validate error shows the password: %q", err)
			}
		})
	}
}

// Open reads url_file (a trailing newline is not part of the URL) and
// names the key at fault; no error shows the password.
func TestOpenURLFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	url := pgtest.Database(t)
	s, err := Config{URLFile: write("good", url+"\n")}.Open(t.Context(), nil)
	if err != nil {
		t.Fatalf("Open(url_file): %v", err)
	}
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()

	for _, c := range []struct {
		name, path string
		want       string
	}{
		{"missing", filepath.Join(dir, "absent"), "store.postgres.url_file: open "},
		{"empty", write("empty", "\n"), "is empty"},
		{"unparsable", write("bad", "postgres://rcsso:hunter2secret@db:notaport/x\n"), "store.postgres.url_file: "},
	} {
		_, err := Config{URLFile: c.path}.Open(t.Context(), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("%s: Open = %v, want an error containing %q and no password", c.name, err, c.want)
		}
	}
}

// A server that refuses or cannot be reached: the error says where, not
// with which password.
func TestOpenErrorsHidePassword(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	live := pgtest.Database(t)
	host := strings.TrimPrefix(live[:strings.LastIndex(live, "/")], "postgres://postgres@")
	for _, url := range []string{
		"postgres://rcsso:hunter2secret@" + closed + "/rcsso?connect_timeout=2",
		"postgres://rcsso:hunter2secret@" + host + "/no_such_database",
		"host=127.0.0.1 port=" + closed[strings.LastIndex(closed, ":")+1:] + " user=rcsso password=hunter2secret dbname=x connect_timeout=2",
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		s, err := Config{URL: url}.Open(ctx, nil)
		cancel()
		if err == nil {
			_ = s.Close()
			t.Fatalf("Open(%s) succeeded", strings.ReplaceAll(url, "hunter2secret", "xxxxx"))
		}
		t.Log(err)
		if strings.Contains(err.Error(), "hunter2secret") || !strings.Contains(err.Error(), "store.postgres.url: postgres: open rcsso@127.0.0.1:") {
			t.Errorf("Open error = %q, want the target named and no password", err)
		}
	}
}

// FuzzParseConfigHidesPassword: a password in any place a connection
// string takes one never shows in the error for a string that does not
// parse, whatever surrounds it.
func FuzzParseConfigHidesPassword(f *testing.F) {
	for _, seed := range []struct {
		form           uint8
		rest, password string
	}{
		{0, "db:5432/x", "hunter2"},
		{0, "db:notaport/x", "hunter2"},
		{0, "[::1/x", "s3cr3t:x"},
		{0, "db/x?sslmode=maybe", "pw%41pw"},
		{0, "db:5432,db2:x/x", "p%40ss:w0rd"},
		{1, "port=x", "hunter2"},
		{2, "port=x", "hunter 2"},
		{3, "port=x", "hunter2"},
		{4, "sslmode=bad", "hunter2"},
	} {
		f.Add(seed.form, seed.rest, seed.password)
	}
	f.Fuzz(func(t *testing.T, form uint8, rest, password string) {
		// Short passwords, or ones without a digit, match ordinary words of
		// messages; the alphabet keeps out what ends a password in the form
		// it is placed in, and quotes that messages add; unprintable bytes
		// elsewhere are escaped in messages (\x90000001 holds "000000").
		if len(password) < 6 || !strings.ContainsAny(password, "0123456789") || strings.TrimSpace(password) != password ||
			strings.ContainsFunc(rest, func(r rune) bool { return !unicode.IsPrint(r) }) || !utf8.ValidString(rest) ||
			strings.ContainsFunc(password, func(r rune) bool {
				return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
					strings.ContainsRune("._~!$*+,;=:%-", r) || r == ' ' && form%5 == 2)
			}) {
			return
		}
		var conn string
		switch form % 5 {
		case 0:
			conn = "postgres://rcsso:" + password + "@" + rest
		case 1:
			conn = "host=db password=" + password + " " + rest
		case 2:
			conn = "host=db password='" + password + "' " + rest
		case 3:
			conn = "postgres://db/x?password=" + password + "&" + rest
		case 4:
			conn = "postgresql://db/x?sslpassword=" + password + "&" + rest
		}
		if strings.Contains(strings.Replace(conn, password, "", 1), password) {
			return // it also appears outside the password's place
		}
		_, err := parseConfig(conn)
		if err != nil && strings.Contains(err.Error(), password) {
			t.Fatalf("error for %q shows the password: %v", conn, err)
		}
	})
}

// A database migrated by a newer rcsso is refused, not silently used.
func TestOpenRefusesNewerSchema(t *testing.T) {
	url := pgtest.Database(t)
	open(t, url)
	if err := pgtest.Exec(t.Context(), url, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (999, true)`); err != nil {
		t.Fatal(err)
	}
	_, err := Config{URL: url}.Open(t.Context(), nil)
	if err == nil || !strings.Contains(err.Error(), "schema version 999 is newer") {
		t.Fatalf("Open of a newer schema = %v, want a refusal", err)
	}
}

// Instances starting together migrate once; every one opens.
func TestConcurrentOpen(t *testing.T) {
	url := pgtest.Database(t)
	errs := make(chan error, 6)
	for range cap(errs) {
		go func() {
			s, err := Config{URL: url}.Open(t.Context(), nil)
			if err == nil {
				err = s.Close()
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	s := open(t, url)
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM goose_db_version WHERE version_id > 0`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if want, _ := migrationCount(); n != want {
		t.Fatalf("%d migrations recorded, want %d (each applied once)", n, want)
	}
}

func migrationCount() (int, error) {
	entries, err := migrations.ReadDir("migrations")
	return len(entries), err
}

func TestSecretsIn(t *testing.T) {
	for conn, want := range map[string][]string{
		"postgres://u:p%40ss@db/x":                 {"p%40ss", "p@ss"},
		"postgres://u:a@b@db/x":                    {"a@b"},
		"postgres://u@db/x":                        nil,
		"postgres://db/x?password=q1&sslmode=bad":  {"q1"},
		"host=db password='with space' user=u":     {"with space"},
		"host=db password=plain sslpassword=other": {"plain", "other"},
	} {
		got := secretsIn(conn)
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				t.Errorf("secretsIn(%q) = %q, want it to include %q", conn, got, w)
			}
		}
		if want == nil && len(got) > 0 {
			t.Errorf("secretsIn(%q) = %q, want none", conn, got)
		}
	}
	if err := redact(errors.New("a hunter2 b"), "hunter2"); err.Error() != "a xxxxx b" {
		t.Errorf("redact = %q", err)
	}
	wrapped := redact(fmt.Errorf("dial hunter2: %w", context.Canceled), "hunter2")
	if !errors.Is(wrapped, context.Canceled) {
		t.Error("redact lost the cause")
	}
}
