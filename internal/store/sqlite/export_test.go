package sqlite

import (
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/store"
)

// digest is the SHA-256 of every file in dir (name → hash), so a test can
// tell that nothing was written, created or removed there.
func digest(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][32]byte{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = sha256.Sum256(b)
	}
	return out
}

// sameFiles fails t unless dir holds the files before lists, unchanged.
// SQLite's shared-memory index of a WAL database (-shm) and an empty -wal
// are allowed to appear: a reader of a WAL database needs them, and they
// hold no data.
func sameFiles(t *testing.T, dir string, before map[string][32]byte) {
	t.Helper()
	after := digest(t, dir)
	for name, h := range before {
		if a, ok := after[name]; !ok {
			t.Errorf("%s was removed", name)
		} else if a != h {
			t.Errorf("%s was written", name)
		}
	}
	for name := range after {
		if _, ok := before[name]; ok || strings.HasSuffix(name, "-shm") {
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && strings.HasSuffix(name, "-wal") && fi.Size() == 0 {
			continue
		}
		t.Errorf("%s was created", name)
	}
}

// OpenReadOnly reads an rcsso database without changing a byte of it, and
// every write through it fails.
func TestOpenReadOnlyWritesNothing(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	path := filepath.Join(dir, "rcsso.db")
	rw, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.PutToken(ctx, store.Token{Subject: "local:alice", UserID: "u1", Ciphertext: []byte{0, 0xff}, MintedAt: time.Now(), ValidatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := rw.PutSession(ctx, store.Session{IDHash: "h", Subject: "local:alice", ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := rw.Close(); err != nil {
		t.Fatal(err)
	}
	before := digest(t, dir)

	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	var tokens, sessions int
	err = ro.Export(ctx, store.Visitor{
		Token:   func(store.Token) error { tokens++; return nil },
		Session: func(store.Session) error { sessions++; return nil },
	})
	if err != nil || tokens != 1 || sessions != 1 {
		t.Fatalf("Export = %v: %d tokens, %d sessions, want 1 and 1", err, tokens, sessions)
	}
	if _, err := ro.GetToken(ctx, "local:alice"); err != nil {
		t.Errorf("GetToken: %v", err)
	}
	if err := ro.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if err := ro.PutToken(ctx, store.Token{Subject: "local:bob"}); err == nil {
		t.Error("PutToken on a read-only store succeeded")
	}
	if err := ro.DeleteToken(ctx, "local:alice"); err == nil {
		t.Error("DeleteToken on a read-only store succeeded")
	}
	if _, err := ro.UpdateLink(ctx, "local:bob", func(*store.Link) error { return nil }); err == nil {
		t.Error("UpdateLink on a read-only store succeeded")
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, dir, before)
}

// A missing file is not created; files that are no rcsso store, or an
// rcsso store of another schema version, are refused, naming the fix.
func TestOpenReadOnlyRefuses(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Version 1 of the schema: what rcsso wrote before migration 2.
	old := filepath.Join(dir, "old.db")
	if err := os.WriteFile(old, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM schema_version WHERE version > 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	newer := filepath.Join(dir, "newer.db")
	if s, err = Open(ctx, newer); err != nil {
		t.Fatal(err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, 0)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	empty := write("empty.db", nil)
	text := write("notes.txt", []byte("not a database at all, just some text that is long enough to look like a header......"))
	other := filepath.Join(dir, "other.db")
	db, err := Open(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.db.ExecContext(ctx, `DROP TABLE schema_version`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := os.Mkdir(filepath.Join(dir, "adir"), 0o700); err != nil {
		t.Fatal(err)
	}
	before := digest(t, dir)

	for _, c := range []struct {
		name, path string
		noStore    bool
		want       string
	}{
		{"missing", filepath.Join(dir, "missing.db"), true, "does not exist"},
		{"missing dir", filepath.Join(dir, "nodir", "rcsso.db"), true, "does not exist"},
		{"empty file", empty, true, "no rcsso schema"},
		{"no schema_version", other, true, "no rcsso schema"},
		{"not a database", text, false, "not a database"},
		{"directory", filepath.Join(dir, "adir"), false, "not a regular file"},
		{"older schema", old, false, "start this rcsso on it once"},
		{"newer schema", newer, false, "newer than this rcsso supports"},
		{"memory", MemoryPath, true, ""},
		{"dsn", filepath.Join(dir, "x.db?mode=rw"), false, "unsupported path"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, err := OpenReadOnly(ctx, c.path)
			if err == nil {
				s.Close()
				t.Fatal("OpenReadOnly succeeded, want an error")
			}
			if errors.Is(err, store.ErrNoStore) != c.noStore {
				t.Errorf("OpenReadOnly = %v; errors.Is(ErrNoStore) = %v, want %v", err, !c.noStore, c.noStore)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("OpenReadOnly = %v, want it to say %q", err, c.want)
			}
		})
	}
	sameFiles(t, dir, before)
	if _, err := os.Stat(filepath.Join(dir, "nodir")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly created a directory: %v", err)
	}
}

// A running rcsso may keep writing the file while it is read.
func TestOpenReadOnlyBesideWriter(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "rcsso.db")
	rw, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer rw.Close()
	if err := rw.CreateAccount(ctx, store.Account{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if err := rw.CreateAccount(ctx, store.Account{Username: "bob"}); err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := ro.Export(ctx, store.Visitor{Account: func(a store.Account) error { names = append(names, a.Username); return nil }}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "alice,bob" {
		t.Errorf("exported accounts %v, want alice and bob", names)
	}
}
