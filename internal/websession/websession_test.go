package websession_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rcsso/rcsso/internal/hotcache"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/websession"
)

// counting is a memory store that counts GetSession reads.
type counting struct {
	*memory.Store
	reads atomic.Int64
}

func (s *counting) GetSession(ctx context.Context, h string) (store.Session, error) {
	s.reads.Add(1)
	return s.Store.GetSession(ctx, h)
}

func newManager(t *testing.T, st store.Store) *websession.Manager {
	t.Helper()
	return newManagerMaxAge(t, st, 0)
}

func newManagerMaxAge(t *testing.T, st store.Store, maxAge time.Duration) *websession.Manager {
	t.Helper()
	hot := hotcache.New(st, hotcache.Options{Size: 10, MaxAge: maxAge})
	if err := hot.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hot.Close)
	return websession.New(st, websession.Options{CookieName: "s", SameSite: http.SameSiteLaxMode, TTL: time.Hour, Cache: hot})
}

func start(t *testing.T, m *websession.Manager, id identity.Identity) *http.Cookie {
	t.Helper()
	w := httptest.NewRecorder()
	if err := m.Start(t.Context(), w, id); err != nil {
		t.Fatal(err)
	}
	return w.Result().Cookies()[0]
}

func lookup(m *websession.Manager, c *http.Cookie) (store.Session, error) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if c != nil {
		r.AddCookie(c)
	}
	return m.Lookup(r)
}

// A session served from the cache is the store's record: every profile
// field, nil roles ("not managed") and empty roles ("none") kept apart,
// times to the millisecond.
func TestCachedSessionIsTheStoredOne(t *testing.T) {
	st := &counting{Store: memory.New()}
	m := newManager(t, st)
	for _, roles := range [][]string{nil, {}, {"admin", "user"}} {
		c := start(t, m, identity.Identity{Subject: "oidc:42", Source: "oidc", Username: "alice", Name: "Alice Ünicode",
			Email: "alice@example.test", EmailVerified: true, AvatarURL: "https://example.test/a.png", Roles: roles, Groups: roles})
		fromStore, err := lookup(m, c)
		if err != nil {
			t.Fatal(err)
		}
		reads := st.reads.Load()
		cached, err := lookup(m, c)
		if err != nil {
			t.Fatal(err)
		}
		if st.reads.Load() != reads {
			t.Fatal("the second lookup read the store")
		}
		fromStore.CreatedAt, fromStore.ExpiresAt = fromStore.CreatedAt.Truncate(time.Millisecond), fromStore.ExpiresAt.Truncate(time.Millisecond)
		if !reflect.DeepEqual(cached, fromStore) {
			t.Fatalf("cached session\n%#v\nstored session\n%#v", cached, fromStore)
		}
		if (cached.Groups == nil) != (roles == nil) || len(cached.Groups) != len(roles) {
			t.Fatalf("groups %#v, want %#v", cached.Groups, roles)
		}
		if cached.Roles != nil {
			cached.Roles = append(cached.Roles[:0], "mutated")
			if again, _ := lookup(m, c); len(again.Roles) > 0 && again.Roles[0] == "mutated" {
				t.Fatal("a caller's change to Roles reached the cache")
			}
		}
	}
}

// An expired session is not served from the cache, even while the cache
// would still trust the entry.
func TestExpiredSessionNotServedFromCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := newManagerMaxAge(t, memory.New(), 24*time.Hour)
		c := start(t, m, identity.Identity{Subject: "local:alice", Source: "local", Username: "alice"})
		if _, err := lookup(m, c); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour) // the fake clock: the session's TTL
		if _, err := lookup(m, c); !errors.Is(err, identity.ErrNotLoggedIn) {
			t.Fatalf("expired session: %v, want ErrNotLoggedIn", err)
		}
	})
}

// Hostile cookies (unknown, over-long, empty) are not logged in, and a
// lookup of an unknown one leaves nothing in the cache to fill it with.
func TestHostileCookies(t *testing.T) {
	st := &counting{Store: memory.New()}
	m := newManager(t, st)
	for _, v := range []string{"", strings.Repeat("A", 129), "not-a-session"} {
		if _, err := lookup(m, &http.Cookie{Name: "s", Value: v}); !errors.Is(err, identity.ErrNotLoggedIn) {
			t.Fatalf("cookie %q: %v", v, err)
		}
	}
	before := st.reads.Load()
	if _, err := lookup(m, &http.Cookie{Name: "s", Value: "not-a-session"}); !errors.Is(err, identity.ErrNotLoggedIn) || st.reads.Load() != before+1 {
		t.Fatalf("an unknown session id was answered from the cache: %v", err)
	}
}

// End and EndSubject are honoured by the other instances at once (the
// memory store's feed is synchronous).
func TestEndAcrossInstances(t *testing.T) {
	st := memory.New()
	a, b := newManager(t, st), newManager(t, st)
	id := identity.Identity{Subject: "local:alice", Source: "local", Username: "alice"}
	c1, c2 := start(t, a, id), start(t, a, id)
	for _, c := range []*http.Cookie{c1, c2} {
		if _, err := lookup(b, c); err != nil {
			t.Fatal(err)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "/logout", nil)
	r.AddCookie(c1)
	if _, ok, err := a.End(t.Context(), httptest.NewRecorder(), r); !ok || err != nil {
		t.Fatalf("End: %v, %v", ok, err)
	}
	if _, err := lookup(b, c1); !errors.Is(err, identity.ErrNotLoggedIn) {
		t.Fatalf("B after End on A: %v", err)
	}
	if _, err := a.EndSubject(t.Context(), id.Subject); err != nil {
		t.Fatal(err)
	}
	if _, err := lookup(b, c2); !errors.Is(err, identity.ErrNotLoggedIn) {
		t.Fatalf("B after EndSubject on A: %v", err)
	}
}
