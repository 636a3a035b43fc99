package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/storetest"
)

func TestConformanceMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), MemoryPath)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConformanceFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.Context(), filepath.Join(t.TempDir(), "rcsso.db"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestFileReopenAndMode(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "rcsso.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	tok := store.Token{Subject: "local:alice", UserID: "u1", Ciphertext: []byte{0, 1, 2, 0xff},
		MintedAt: time.Now().Add(-time.Minute), ValidatedAt: time.Now()}
	exp := time.Now().Add(time.Hour)
	if err := s.PutToken(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSession(ctx, store.Session{IDHash: "h", Subject: "local:alice", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccount(ctx, store.Account{Username: "Alice", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Errorf("database file mode = %o, want 600", mode)
	}

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	got, err := s.GetToken(ctx, "local:alice")
	if err != nil {
		t.Fatalf("GetToken after reopen: %v", err)
	}
	if string(got.Ciphertext) != string(tok.Ciphertext) || !got.MintedAt.Equal(tok.MintedAt.Truncate(time.Millisecond)) {
		t.Errorf("token after reopen = %+v, want %+v", got, tok)
	}
	if _, err := s.GetSession(ctx, "h"); err != nil {
		t.Errorf("GetSession after reopen: %v", err)
	}
	if _, err := s.GetAccount(ctx, "ALICE"); err != nil {
		t.Errorf("GetAccount after reopen: %v", err)
	}
	var versions, journal string
	if err := s.db.QueryRowContext(ctx, `SELECT group_concat(version) FROM schema_version`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	var all []string
	for v := range migrations {
		all = append(all, fmt.Sprint(v+1))
	}
	if want := strings.Join(all, ","); versions != want {
		t.Errorf("schema_version rows = %q, want %q (migrations applied once)", versions, want)
	}
	if err := s.db.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&journal); err != nil {
		t.Fatal(err)
	}
	if journal != "wal" {
		t.Errorf("journal_mode = %q, want wal", journal)
	}
	// SQLite gives the WAL file the database file's permissions.
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("WAL file mode = %o, want 600", fi.Mode().Perm())
	}
}

func TestOpenRejectsPaths(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"", filepath.Join(dir, "a?mode=ro"), "file:" + filepath.Join(dir, "b")} {
		if s, err := Open(t.Context(), p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want error", p)
		}
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "rcsso.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, 0)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(ctx, path); err == nil {
		s.Close()
		t.Fatal("Open of a newer schema succeeded, want error")
	} else if !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestPutSessionPurgesExpired(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, MemoryPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	past := time.Now().Add(-time.Hour).UnixMilli()
	const expired = purgeBatch + purgeBatch/2
	for i := range expired {
		if _, err := s.db.ExecContext(ctx, `INSERT INTO sessions VALUES (?, 's', 'local', '', '', '', '{}', 0, ?)`,
			fmt.Sprint("old", i), past); err != nil {
			t.Fatal(err)
		}
	}
	count := func() (n int) {
		t.Helper()
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM sessions`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	live := store.Session{IDHash: "live", Subject: "s", ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.PutSession(ctx, live); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != expired-purgeBatch+1 {
		t.Fatalf("after one PutSession: %d sessions, want %d", n, expired-purgeBatch+1)
	}
	if err := s.PutSession(ctx, live); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("after two PutSessions: %d sessions, want 1", n)
	}
}

func TestErrorsOmitKeys(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, MemoryPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const id = "c2Vzc2lvbi1pZC1oYXNoLXNlY3JldA"
	_, err = s.GetSession(ctx, id)
	if !errors.Is(err, store.ErrNotFound) || strings.Contains(err.Error(), id) {
		t.Fatalf("GetSession error = %v", err)
	}
	if !strings.HasPrefix(err.Error(), "sqlite: get session: ") {
		t.Fatalf("GetSession error %q lacks operation prefix", err)
	}
}

// BenchmarkHotPath measures the per-request lookups (GetSession then GetToken)
// on a file-backed WAL database holding 10k sessions and tokens.
func BenchmarkHotPath(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	ct := make([]byte, 120) // ~ an AES-GCM sealed Rocket.Chat token
	for i := range n {
		sub := fmt.Sprintf("local:user%05d", i)
		if err := s.PutSession(ctx, store.Session{IDHash: fmt.Sprintf("%043d", i), Subject: sub, Source: "local",
			Username: "user", Name: "User", Email: "user@example.org", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
		if err := s.PutToken(ctx, store.Token{Subject: sub, UserID: "aBcDeFgHiJkLmNoPq", Ciphertext: ct,
			MintedAt: now, ValidatedAt: now}); err != nil {
			b.Fatal(err)
		}
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%043d", i)
	}
	lookup := func(i int) error {
		sess, err := s.GetSession(ctx, ids[i%n])
		if err != nil {
			return err
		}
		_, err = s.GetToken(ctx, sess.Subject)
		return err
	}
	b.Run("Serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := lookup(i); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.ReportAllocs()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := lookup(int(next.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// TestHotPathQueryPlans pins GetSession and GetToken to a primary-key search.
func TestHotPathQueryPlans(t *testing.T) {
	ctx := t.Context()
	s, err := Open(ctx, MemoryPath)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for q, args := range map[string][]any{
		getSessionSQL: {"x", 0},
		getTokenSQL:   {"x"},
	} {
		rows, err := s.db.QueryContext(ctx, `EXPLAIN QUERY PLAN `+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if len(plan) != 1 || !strings.HasPrefix(plan[0], "SEARCH") || !strings.Contains(plan[0], "PRIMARY KEY") {
			t.Errorf("plan for %q = %q, want one primary-key SEARCH", q, plan)
		}
	}
}

// TestMigrationRefusesSharedLinks: a version-1 database in which one
// Rocket.Chat user is linked to two subjects (the account takeover by
// adoption that version 2 prevents) is not silently upgraded: Open fails
// naming the user and both subjects; a clean version-1 database upgrades
// and keeps its links.
func TestMigrationRefusesSharedLinks(t *testing.T) {
	ctx := context.Background()
	v1 := func(t *testing.T, links ...[2]string) string {
		path := filepath.Join(t.TempDir(), "v1.db")
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for _, q := range []string{`CREATE TABLE schema_version (version INTEGER NOT NULL PRIMARY KEY, applied_at INTEGER NOT NULL)`,
			migrations[0], `INSERT INTO schema_version VALUES (1, 0)`} {
			if _, err := db.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		for _, l := range links {
			if _, err := db.ExecContext(ctx, `INSERT INTO links (subject, user_id, username, profile_hash, updated_at) VALUES (?, ?, 'x', '', 1)`, l[0], l[1]); err != nil {
				t.Fatal(err)
			}
		}
		return path
	}
	_, err := Open(ctx, v1(t, [2]string{"header:carol", "u-carol"}, [2]string{"header:CAROL", "u-carol"}, [2]string{"header:dave", "u-dave"}))
	if err == nil || !strings.Contains(err.Error(), "u-carol") || !strings.Contains(err.Error(), "header:carol") || !strings.Contains(err.Error(), "header:CAROL") {
		t.Fatalf("Open(v1 with a shared link) = %v, want a refusal naming u-carol, header:carol and header:CAROL", err)
	}
	s, err := Open(ctx, v1(t, [2]string{"header:carol", "u-carol"}, [2]string{"header:dave", "u-dave"}))
	if err != nil {
		t.Fatalf("Open(clean v1): %v", err)
	}
	defer s.Close()
	l, err := s.LinkByUserID(ctx, "u-dave")
	if err != nil || l.Subject != "header:dave" {
		t.Fatalf("LinkByUserID after upgrade = %+v, %v", l, err)
	}
}

// Ping notices a database file deleted or replaced while the store is open
// (SQLite would go on writing the unlinked file, and everything written
// afterwards would be lost at restart); /readyz reports it.
func TestPingNoticesDeletedOrReplacedFile(t *testing.T) {
	ctx := t.Context()
	for _, c := range []struct {
		name, want string
		break_     func(t *testing.T, path string)
	}{
		{"deleted", "was deleted", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"replaced", "was replaced", func(t *testing.T, path string) {
			other := path + ".new"
			if err := os.WriteFile(other, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(other, path); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "rcsso.db")
			s, err := Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping before: %v", err)
			}
			c.break_(t, path)
			err = s.Ping(ctx)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("Ping after the file %s: %v", c.name, err)
			}
		})
	}
	// A relative path is resolved once, at Open; an in-memory database has
	// no file to lose.
	t.Chdir(t.TempDir())
	for _, path := range []string{"rcsso.db", MemoryPath} {
		s, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Errorf("Ping of %s: %v", path, err)
		}
		_ = s.Close()
	}
}
