package postgres

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/storetest"
	"github.com/rcsso/rcsso/internal/testing/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open opens a store on url for t, closed when t ends.
func open(t testing.TB, url string) *Store {
	t.Helper()
	s, err := Config{URL: url}.Open(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Config{URL: pgtest.Database(t)}.Open(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// eventually polls cond every 20 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, what)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Keys PostgreSQL text cannot hold (NUL, invalid UTF-8) find nothing and
// fail writes cleanly, without repeating the bytes; keys rcsso builds
// itself (UseOnce, Count, leases) take any bytes and stay distinct.
func TestHostileKeys(t *testing.T) {
	s := open(t, pgtest.Database(t))
	ctx := t.Context()
	for _, key := range []string{"a\x00b", "\xff\xfe", "local:\x00", strings.Repeat("\x00", 3)} {
		checkErr := func(op string, err error, want error) {
			t.Helper()
			if want != nil && !errors.Is(err, want) {
				t.Errorf("%s(%q) = %v, want %v", op, key, err, want)
			}
			if err != nil && (strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "0x00") || strings.Contains(err.Error(), "0xff")) {
				t.Errorf("%s(%q) error repeats the key: %v", op, key, err)
			}
		}
		_, err := s.GetSession(ctx, key)
		checkErr("GetSession", err, store.ErrNotFound)
		_, err = s.GetToken(ctx, key)
		checkErr("GetToken", err, store.ErrNotFound)
		_, err = s.GetLink(ctx, key)
		checkErr("GetLink", err, store.ErrNotFound)
		_, err = s.LinkByUserID(ctx, key)
		checkErr("LinkByUserID", err, store.ErrNotFound)
		_, err = s.GetAccount(ctx, key)
		checkErr("GetAccount", err, store.ErrNotFound)
		checkErr("DeleteAccount", s.DeleteAccount(ctx, key), store.ErrNotFound)
		_, err = s.ConsumeCode(ctx, key)
		checkErr("ConsumeCode", err, store.ErrNotFound)
		checkErr("DeleteSession", s.DeleteSession(ctx, key), nil)
		checkErr("DeleteToken", s.DeleteToken(ctx, key), nil)
		checkErr("DeleteLink", s.DeleteLink(ctx, key), nil)
		if n, err := s.DeleteSessionsBySubject(ctx, key); n != 0 || err != nil {
			t.Errorf("DeleteSessionsBySubject(%q) = %d, %v", key, n, err)
		}

		// Writes fail, naming the problem.
		for op, err := range map[string]error{
			"PutToken":   s.PutToken(ctx, store.Token{Subject: key, Ciphertext: []byte{1}}),
			"PutSession": s.PutSession(ctx, store.Session{IDHash: "h", Subject: key, ExpiresAt: time.Now().Add(time.Hour)}),
			"PutCode":    s.PutCode(ctx, store.Code{Hash: key, ExpiresAt: time.Now().Add(time.Hour)}),
			// strings.ToLower (every backend folds usernames) turns invalid
			// UTF-8 into U+FFFD, so only NUL reaches PostgreSQL.
			"CreateAccount": s.CreateAccount(ctx, store.Account{Username: strings.ReplaceAll(key, "\xff", "\x00")}),
			"UpdateLink": func() error {
				_, err := s.UpdateLink(ctx, "local:ok", func(l *store.Link) error { l.Username = key; return nil })
				return err
			}(),
		} {
			if err == nil || !strings.Contains(err.Error(), "PostgreSQL text cannot store") {
				t.Errorf("%s with %q = %v, want the text error", op, key, err)
			}
			checkErr(op, err, nil)
		}
		if _, err := s.GetLink(ctx, "local:ok"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a refused UpdateLink wrote (GetLink err = %v)", err)
		}

		// Opaque keys take any bytes, and differ from their neighbours.
		if first, err := s.UseOnce(ctx, "once:"+key, time.Now().Add(time.Minute)); err != nil || !first {
			t.Errorf("UseOnce(%q) = %v, %v", key, first, err)
		}
		if first, _ := s.UseOnce(ctx, "once:"+key+"x", time.Now().Add(time.Minute)); !first {
			t.Errorf("UseOnce(%q + x) was taken by %q", key, key)
		}
		if n, _, err := s.Count(ctx, "count:"+key, 2, time.Minute); err != nil || n != 2 {
			t.Errorf("Count(%q) = %d, %v", key, n, err)
		}
		tok, ok, err := s.TryLock(ctx, "lease:"+key, time.Minute)
		if err != nil || !ok {
			t.Errorf("TryLock(%q) = %v, %v", key, ok, err)
		}
		if _, ok, _ := s.TryLock(ctx, "lease:"+key, time.Minute); ok {
			t.Errorf("TryLock(%q) twice: both got the lease", key)
		}
		checkErr("Unlock", s.Unlock(ctx, "lease:"+key, tok), nil)
		checkErr("ResetCount", s.ResetCount(ctx, "count:"+key), nil)
	}
}

// PutSession deletes expired sessions in batches of purgeBatch, never the
// live ones.
func TestPutSessionPurgesExpired(t *testing.T) {
	s := open(t, pgtest.Database(t))
	ctx := t.Context()
	const expired = purgeBatch + purgeBatch/2
	if _, err := s.pool.Exec(ctx, `INSERT INTO sessions SELECT 'old' || i, 's', 'local', '', '', '', false, '', NULL,
now(), now() - interval '1 hour' FROM generate_series(1, $1) i`, expired); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		t.Helper()
		if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM sessions`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	live := store.Session{IDHash: "live", Subject: "s", ExpiresAt: time.Now().Add(time.Hour)}
	for i, want := range []int{expired - purgeBatch + 1, 1} {
		if err := s.PutSession(ctx, live); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != want {
			t.Fatalf("after PutSession %d: %d sessions, want %d", i+1, n, want)
		}
	}
}

// Instances on one database hear each other's changes within a second.
func TestChangeFeedAcrossInstances(t *testing.T) {
	url := pgtest.Database(t)
	a, b := open(t, url), open(t, url)
	heard := make(chan string, 10)
	if err := b.Subscribe(t.Context(), func(s string) { heard <- s }); err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{"local:alice", strings.Repeat("x", maxPayload+1), "a\x00b"} {
		start := time.Now()
		if err := a.Publish(t.Context(), subject); err != nil {
			t.Fatal(err)
		}
		want := subject
		if len(subject) > maxPayload || !textOK(subject) {
			want = "" // too long for NOTIFY, or not text: drop everything
		}
		select {
		case got := <-heard:
			if got != want {
				t.Fatalf("heard %.20q, want %.20q", got, want)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("heard after %v, want within a second", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("instance b did not hear %.20q from instance a", subject)
		}
	}
	// Close ends the feed: its connection leaves the server.
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the closed store's LISTEN connection is still there", func() bool {
		var n int
		err := a.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'`).Scan(&n)
		return err == nil && n == 0
	})
}

// Two instances on one database: one lease holder; when the holder's
// connections are killed (a crashed host), the lease frees itself when its
// TTL ends, not before, and the old holder can neither renew nor release
// the new holder's lease. The holder's pool recovers by itself.
func TestLeaseAcrossInstances(t *testing.T) {
	url := pgtest.Database(t)
	holder, other := open(t, url+"&application_name=holder"), open(t, url)
	ctx := t.Context()
	const ttl = 2 * time.Second
	tok, ok, err := holder.TryLock(ctx, "mint:alice", ttl)
	if err != nil || !ok {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	taken := time.Now()
	if _, ok, _ := other.TryLock(ctx, "mint:alice", ttl); ok {
		t.Fatal("a second instance got a held lease")
	}
	if err := pgtest.Exec(ctx, url, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'holder'`); err != nil {
		t.Fatal(err)
	}
	var tok2 string
	eventually(t, ttl+3*time.Second, "the lease of a killed holder did not free itself", func() bool {
		tok2, ok, err = other.TryLock(ctx, "mint:alice", ttl)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	})
	if d := time.Since(taken); d < ttl-100*time.Millisecond {
		t.Fatalf("the lease freed itself after %v, before its TTL %v", d, ttl)
	}
	// The old holder's pool reconnects; its token no longer holds.
	eventually(t, 5*time.Second, "the holder's store did not recover", func() bool { return holder.Ping(ctx) == nil })
	if ok, err := holder.Renew(ctx, "mint:alice", tok, ttl); err != nil || ok {
		t.Fatalf("the old holder renewed the new holder's lease: %v, %v", ok, err)
	}
	if err := holder.Unlock(ctx, "mint:alice", tok); err != nil {
		t.Fatal(err)
	}
	if ok, err := other.Renew(ctx, "mint:alice", tok2, ttl); err != nil || !ok {
		t.Fatalf("the new holder lost its lease to the old holder's Unlock: %v, %v", ok, err)
	}
}
