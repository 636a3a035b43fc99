package postgres

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/testing/pgtest"
)

// OpenReadOnly reads an rcsso database and the server refuses every write
// made through it; it creates nothing in a database rcsso never used, and
// refuses a schema this binary does not know.
func TestOpenReadOnly(t *testing.T) {
	ctx := t.Context()
	url := pgtest.Database(t)

	if s, err := (Config{URL: url}).OpenReadOnly(ctx, nil); err == nil {
		s.Close()
		t.Fatal("OpenReadOnly of an empty database succeeded")
	} else if !errors.Is(err, store.ErrNoStore) || !strings.Contains(err.Error(), "no rcsso schema") {
		t.Fatalf("OpenReadOnly of an empty database = %v, want ErrNoStore", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var tables int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()`).Scan(&tables)
	_ = conn.Close(ctx)
	if err != nil || tables != 0 {
		t.Fatalf("after OpenReadOnly the empty database has %d tables (%v), want none", tables, err)
	}
	rw := open(t, url)
	if err := rw.PutToken(ctx, store.Token{Subject: "local:alice", UserID: "u1", Ciphertext: []byte{0, 0xff}, MintedAt: time.Now(), ValidatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	ro, err := StoreConfig{Postgres: Config{URL: url}}.OpenReadOnly(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	n := 0
	if err := ro.(store.Exporter).Export(ctx, store.Visitor{Token: func(store.Token) error { n++; return nil }}); err != nil || n != 1 {
		t.Fatalf("Export = %v with %d tokens, want 1", err, n)
	}
	if err := ro.PutToken(ctx, store.Token{Subject: "local:bob", Ciphertext: []byte{1}}); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("PutToken through a read-only store = %v, want the server's read-only refusal", err)
	}
	if _, err := ro.UpdateLink(ctx, "local:bob", func(l *store.Link) error { l.UserID = "u2"; return nil }); err == nil {
		t.Error("UpdateLink through a read-only store succeeded")
	}
	if _, err := rw.GetToken(ctx, "local:bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a read-only store wrote a token: %v", err)
	}

	// A schema from a newer rcsso.
	if _, err := rw.pool.Exec(ctx, `INSERT INTO goose_db_version (version_id, is_applied) VALUES (99999, true)`); err != nil {
		t.Fatal(err)
	}
	if s, err := (Config{URL: url}).OpenReadOnly(ctx, nil); err == nil {
		s.Close()
		t.Error("OpenReadOnly of a newer schema succeeded")
	} else if !strings.Contains(err.Error(), "newer than this rcsso supports") {
		t.Errorf("OpenReadOnly of a newer schema = %v", err)
	}
}
