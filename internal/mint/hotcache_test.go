package mint_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rcsso/rcsso/internal/hotcache"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
)

// hookStore is a memory store that runs a hook once, right after a
// GetToken read.
type hookStore struct {
	*memory.Store
	afterGetToken atomic.Pointer[func()]
}

func (s *hookStore) GetToken(ctx context.Context, subject string) (store.Token, error) {
	t, err := s.Store.GetToken(ctx, subject)
	if f := s.afterGetToken.Swap(nil); f != nil {
		(*f)()
	}
	return t, err
}

// cachedBroker is one rcsso instance's broker on st, with its own hot
// cache following st's change feed.
func cachedBroker(t *testing.T, st store.Store, m *fakeMinter, cfg mint.BrokerConfig) *mint.Broker {
	t.Helper()
	hot := hotcache.New(st, hotcache.Options{Size: 2000})
	if err := hot.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hot.Close)
	s, _ := sealer.New(make([]byte, 32))
	cfg.Cache = hot
	if cfg.TTL == 0 {
		cfg.TTL = 24 * time.Hour
	}
	if cfg.RevalidateAfter == 0 {
		cfg.RevalidateAfter = time.Hour
	}
	cfg.MinMintInterval = time.Nanosecond
	return mint.NewBroker(st, s, m, &fakeProv{st: st}, cfg, nil)
}

// The stale insert: instance A misses its cache and reads alice's token
// from the store; before A caches it, instance B logs her out (deletes the
// token, announces it) and A's subscriber has nothing to drop yet. A must
// not cache what it read: its next request finds no token and mints anew
// instead of handing out the revoked one.
func TestStaleTokenNotCachedAfterLogoutElsewhere(t *testing.T) {
	mem := memory.New()
	st := &hookStore{Store: mem}
	m := &fakeMinter{valid: map[string]bool{}}
	a := cachedBroker(t, st, m, mint.BrokerConfig{})
	b := cachedBroker(t, mem, m, mint.BrokerConfig{})

	first, err := b.Token(t.Context(), alice, false)
	if err != nil {
		t.Fatal(err)
	}
	logout := func() {
		if _, err := b.Forget(context.Background(), alice.Subject, true); err != nil {
			t.Error(err)
		}
	}
	st.afterGetToken.Store(&logout)
	if tok, err := a.Token(t.Context(), alice, false); err != nil || tok.Value != first.Value {
		t.Fatalf("the request racing the logout: %q, %v", tok.Value, err) // it read the store before the logout
	}
	if st.afterGetToken.Load() != nil {
		t.Fatal("the hook did not run: A did not read the store")
	}
	tok, err := a.Token(t.Context(), alice, false)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Value == first.Value {
		t.Fatalf("A hands out %q, revoked by the logout on B", tok.Value)
	}
	if n := m.mints.Load(); n != 2 {
		t.Fatalf("%d mints, want 2", n)
	}
}

// Tokens validated at one moment (a morning's logins, a cold start) are
// re-validated spread over the last tenth of revalidate_after, each person
// at a moment fixed by their subject, not all in one burst at
// revalidate_after; each exactly once.
func TestRevalidationsSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const people = 1000
		m := &fakeMinter{valid: map[string]bool{}}
		b := cachedBroker(t, memory.New(), m, mint.BrokerConfig{RevalidateAfter: 100 * time.Minute})
		ids := make([]identity.Identity, people)
		for i := range ids {
			ids[i] = identity.Identity{Subject: fmt.Sprintf("local:user%d", i)}
			if _, err := b.Token(t.Context(), ids[i], false); err != nil {
				t.Fatal(err)
			}
		}
		visitAll := func() int64 {
			before := m.validates.Load()
			for _, id := range ids {
				if _, err := b.Token(t.Context(), id, false); err != nil {
					t.Fatal(err)
				}
			}
			return m.validates.Load() - before
		}
		time.Sleep(90*time.Minute - time.Second) // the fake clock
		if n := visitAll(); n != 0 {
			t.Fatalf("%d re-validations before 90%% of revalidate_after", n)
		}
		var total int64
		for minute := 90; minute < 100; minute++ {
			time.Sleep(time.Minute)
			n := visitAll()
			if n < people/20 || n > people*3/20 {
				t.Fatalf("minute %d: %d re-validations, want about %d (a tenth of the people per tenth of the spread)", minute, n, people/10)
			}
			total += n
		}
		time.Sleep(time.Minute)
		total += visitAll()
		if total != people {
			t.Fatalf("%d re-validations by revalidate_after, want each of %d people once", total, people)
		}
	})
}
