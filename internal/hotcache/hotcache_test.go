package hotcache_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/hotcache"
	"github.com/rcsso/rcsso/internal/store/memory"
)

// instance is one rcsso's cache on a shared store, with a token-like table
// (keyed by subject) and a session-like table (keyed by id, the subject in
// the value).
type instance struct {
	c        *hotcache.Cache
	tokens   *hotcache.Table[string, string]
	sessions *hotcache.Table[int, session]
}

type session struct{ subject string }

func newInstance(t *testing.T, st *memory.Store, o hotcache.Options) *instance {
	t.Helper()
	c := hotcache.New(st, o)
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &instance{
		c:        c,
		tokens:   hotcache.NewSubjectTable[string](c),
		sessions: hotcache.NewTable(c, func(_ int, s *session) string { return s.subject }),
	}
}

func TestBounded(t *testing.T) {
	in := newInstance(t, memory.New(), hotcache.Options{Size: 100})
	for i := range 1000 {
		s := "local:u" + strconv.Itoa(i)
		in.tokens.Put(s, "token", in.c.Snapshot())
		in.sessions.Put(i, session{subject: s}, in.c.Snapshot())
	}
	if n, m := in.tokens.Len(), in.sessions.Len(); n > 100 || m > 100 {
		t.Fatalf("1000 people in a cache of 100: %d tokens, %d sessions held", n, m)
	}
	if _, ok := in.tokens.Get("local:u999"); !ok {
		t.Fatal("the most recent person was evicted")
	}
	if _, ok := in.tokens.Get("local:u0"); ok {
		t.Fatal("the least recent person is still held")
	}
}

// A change announced by another instance drops the person's token and
// every session of theirs here, and nobody else's.
func TestInvalidateAcrossInstances(t *testing.T) {
	st := memory.New()
	a, b := newInstance(t, st, hotcache.Options{Size: 10}), newInstance(t, st, hotcache.Options{Size: 10})
	a.tokens.Put("local:alice", "tok-a", a.c.Snapshot())
	a.tokens.Put("local:bob", "tok-b", a.c.Snapshot())
	a.sessions.Put(1, session{subject: "local:alice"}, a.c.Snapshot())
	a.sessions.Put(2, session{subject: "local:alice"}, a.c.Snapshot())
	a.sessions.Put(3, session{subject: "local:bob"}, a.c.Snapshot())

	if err := b.c.Invalidate(t.Context(), "local:alice"); err != nil {
		t.Fatal(err)
	}
	if v, ok := a.tokens.Get("local:alice"); ok {
		t.Fatalf("alice's token %q still served after her logout elsewhere", v)
	}
	for _, id := range []int{1, 2} {
		if _, ok := a.sessions.Get(id); ok {
			t.Fatalf("alice's session %d still served after her logout elsewhere", id)
		}
	}
	if _, ok := a.tokens.Get("local:bob"); !ok {
		t.Fatal("bob's token was dropped")
	}
	if _, ok := a.sessions.Get(3); !ok {
		t.Fatal("bob's session was dropped")
	}
}

// A subscriber told "" (it may have missed messages) drops everything.
func TestEmptySubjectDropsEverything(t *testing.T) {
	st := memory.New()
	in := newInstance(t, st, hotcache.Options{Size: 10})
	for i := range 5 {
		s := "local:u" + strconv.Itoa(i)
		in.tokens.Put(s, "token", in.c.Snapshot())
		in.sessions.Put(i, session{subject: s}, in.c.Snapshot())
	}
	snap := in.c.Snapshot()
	if err := st.Publish(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, ok := in.tokens.Get("local:u" + strconv.Itoa(i)); ok {
			t.Fatalf("token %d survived the feed's reset", i)
		}
		if _, ok := in.sessions.Get(i); ok {
			t.Fatalf("session %d survived the feed's reset", i)
		}
	}
	if in.tokens.Put("local:u0", "read before the reset", snap) {
		t.Fatal("a record read before the reset was cached after it")
	}
}

// The stale insert: instance A reads alice's token from the store, B
// deletes it and announces it, A's subscriber has nothing to drop yet, and
// A caches what it read. The snapshot taken before the read refuses it;
// had A cached it before the announcement arrived, the announcement drops
// it.
func TestStaleInsertRefused(t *testing.T) {
	st := memory.New()
	a, b := newInstance(t, st, hotcache.Options{Size: 10}), newInstance(t, st, hotcache.Options{Size: 10})

	snap := a.c.Snapshot()                         // A is about to read the store
	sessSnap := a.c.Snapshot()                     // likewise for a session
	_ = b.c.Invalidate(t.Context(), "local:alice") // B deleted the token and the session
	if a.tokens.Put("local:alice", "deleted token", snap) {
		t.Fatal("A cached a token read before B's logout was announced")
	}
	if a.sessions.Put(7, session{subject: "local:alice"}, sessSnap) {
		t.Fatal("A cached a session read before B's logout was announced")
	}
	if v, ok := a.tokens.Get("local:alice"); ok {
		t.Fatalf("A serves %q after B's logout", v)
	}

	// Cached first, announced later: dropped by the announcement.
	a.tokens.Put("local:alice", "token", a.c.Snapshot())
	a.sessions.Put(8, session{subject: "local:alice"}, a.c.Snapshot())
	_ = b.c.Invalidate(t.Context(), "local:alice")
	if _, ok := a.tokens.Get("local:alice"); ok {
		t.Fatal("A serves a token cached before B's logout was announced")
	}
	if _, ok := a.sessions.Get(8); ok {
		t.Fatal("A serves a session cached before B's logout was announced")
	}
}

// Without any message, an entry is trusted for MaxAge at most.
func TestMaxAge(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli())
	clock := func() time.Time { return time.UnixMilli(now.Load()) }
	in := newInstance(t, memory.New(), hotcache.Options{Size: 10, MaxAge: time.Minute, Now: clock})
	in.tokens.Put("local:alice", "token", in.c.Snapshot())
	now.Add((59 * time.Second).Milliseconds())
	if _, ok := in.tokens.Get("local:alice"); !ok {
		t.Fatal("entry dropped before MaxAge")
	}
	now.Add((time.Second).Milliseconds())
	if _, ok := in.tokens.Get("local:alice"); ok {
		t.Fatal("entry served after MaxAge")
	}
}

// Size 0 caches nothing but still announces changes to the others.
func TestSizeZeroStillAnnounces(t *testing.T) {
	st := memory.New()
	off, on := newInstance(t, st, hotcache.Options{}), newInstance(t, st, hotcache.Options{Size: 10})
	if off.tokens != nil || off.tokens.Put("local:alice", "token", off.c.Snapshot()) || off.tokens.Len() != 0 {
		t.Fatal("a cache of size 0 holds entries")
	}
	on.tokens.Put("local:alice", "token", on.c.Snapshot())
	if err := off.c.Invalidate(t.Context(), "local:alice"); err != nil {
		t.Fatal(err)
	}
	if _, ok := on.tokens.Get("local:alice"); ok {
		t.Fatal("a change on an instance without cache was not announced")
	}
}

// Update changes a current entry in place and leaves a dropped one alone.
func TestUpdate(t *testing.T) {
	in := newInstance(t, memory.New(), hotcache.Options{Size: 10})
	in.tokens.Put("local:alice", "v1", in.c.Snapshot())
	if !in.tokens.Update("local:alice", func(v *string) { *v = "v2" }) {
		t.Fatal("Update did not run on a current entry")
	}
	if v, _ := in.tokens.Get("local:alice"); v != "v2" {
		t.Fatalf("got %q after Update", v)
	}
	_ = in.c.Invalidate(t.Context(), "local:alice")
	if in.tokens.Update("local:alice", func(v *string) { *v = "v3" }) {
		t.Fatal("Update ran on a dropped entry")
	}
}
