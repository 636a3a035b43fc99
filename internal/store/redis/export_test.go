package redis

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/testing/redistest"
)

// Export reads only its own key prefix, even one holding the characters
// SCAN's MATCH pattern gives a meaning.
func TestExportStaysInItsPrefix(t *testing.T) {
	ctx := t.Context()
	url := redistest.Start(t)
	stores := map[string]*Store{}
	for _, prefix := range []string{`rc*:`, `rcX:`, `r?[a]\:`, `rA[a]\:`} {
		s := open(t, Config{URL: url, KeyPrefix: prefix})
		stores[prefix] = s
		subject := "local:" + prefix
		if err := s.CreateAccount(ctx, store.Account{Username: "u" + prefix}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutSession(ctx, store.Session{IDHash: "h" + prefix, Subject: subject, ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateLink(ctx, subject, func(l *store.Link) error { l.UserID = "rc-" + prefix; return nil }); err != nil {
			t.Fatal(err)
		}
		if err := s.PutToken(ctx, store.Token{Subject: subject, Ciphertext: []byte{1}}); err != nil {
			t.Fatal(err)
		}
	}
	for prefix, s := range stores {
		var got []string
		err := s.Export(ctx, store.Visitor{
			Account: func(a store.Account) error { got = append(got, "account "+a.Username); return nil },
			Session: func(x store.Session) error { got = append(got, "session "+x.IDHash); return nil },
			Link:    func(l store.Link) error { got = append(got, "link "+l.Subject); return nil },
			Token:   func(x store.Token) error { got = append(got, "token "+x.Subject); return nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"account u" + strings.ToLower(prefix), "session h" + prefix, "link local:" + prefix, "token local:" + prefix}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("prefix %q exported %q, want %q", prefix, got, want)
		}
	}
}

// OpenReadOnly claims nothing: on a prefix rcsso never used it fails with
// ErrNoStore and leaves the database empty.
func TestOpenReadOnly(t *testing.T) {
	ctx := t.Context()
	url := redistest.Start(t)
	if s, err := (StoreConfig{Redis: Config{URL: url}}).OpenReadOnly(ctx, nil); err == nil {
		s.Close()
		t.Fatal("OpenReadOnly of an empty database succeeded")
	} else if !errors.Is(err, store.ErrNoStore) || !strings.Contains(err.Error(), `"rcsso:"`) {
		t.Fatalf("OpenReadOnly of an empty database = %v, want ErrNoStore naming the prefix", err)
	}
	rw := open(t, Config{URL: url, KeyPrefix: "other:"})
	if n, err := rw.rdb.DBSize(ctx).Result(); err != nil || n != 1 { // other:layout
		t.Fatalf("after OpenReadOnly the database holds %d keys (%v), want only other:layout", n, err)
	}
	if err := rw.PutToken(ctx, store.Token{Subject: "local:alice", Ciphertext: []byte{0, 0xff}}); err != nil {
		t.Fatal(err)
	}
	ro, err := Config{URL: url, KeyPrefix: "other:"}.OpenReadOnly(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	n := 0
	if err := ro.Export(ctx, store.Visitor{Token: func(store.Token) error { n++; return nil }}); err != nil || n != 1 {
		t.Fatalf("Export = %v with %d tokens, want 1", err, n)
	}
	if err := rw.rdb.Set(ctx, "other:layout", "2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if s, err := (Config{URL: url, KeyPrefix: "other:"}).OpenReadOnly(ctx, nil); err == nil {
		s.Close()
		t.Fatal("OpenReadOnly of another layout succeeded")
	} else if !strings.Contains(err.Error(), "layout") {
		t.Fatalf("OpenReadOnly of another layout = %v", err)
	}
}
