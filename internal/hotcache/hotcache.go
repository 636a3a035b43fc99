// Package hotcache keeps, in each rcsso instance, a bounded copy of the
// store records the API URL reads on every request: website sessions
// (websession) and each person's decrypted Rocket.Chat token (mint.Broker).
// A request that finds its records here reads nothing from the store.
//
// # Coherence across instances
//
// Whoever changes what a person gets (a logout, a revoked or re-minted
// token, a chat-side logout, a deprovisioned or deactivated user) writes the
// store first and then calls Invalidate with the person's subject. The
// person's entries are dropped here at once, and on every other rcsso
// instance on the store when the store's change feed (store.ChangeFeed)
// delivers the subject: at once for the memory store, within 200 ms for
// SQLite (a polled table), within milliseconds for PostgreSQL (LISTEN/NOTIFY)
// and Redis (pub/sub). A feed that may have lost messages says so with
// subject "", and everything is dropped.
//
// A reader that misses takes a Snapshot before it reads the store and hands
// it to Put, which refuses the record when any invalidation arrived since:
// a record read just before another instance changed it can therefore not
// be cached after the change was announced (the stale insert). As a safety
// net against a message lost without a "" signal, an entry is trusted for
// Options.MaxAge at most.
//
// Entries are dropped per subject through a fixed table of generation
// counters: subjects are hashed onto 16,384 stripes, an entry remembers its
// stripe's generation from when it was cached and is ignored once that
// generation moved on. A change for one person thus also makes the few
// people on the same stripe read the store once more, and no index from
// subjects to session ids is needed.
//
// # Bounds
//
// Each table is an LRU (github.com/hashicorp/golang-lru/v2) of at most
// Options.Size entries; the stripes take 64 KiB. With Size 0 nothing is
// cached, but Invalidate still announces changes to the other instances.
package hotcache

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/rcsso/rcsso/internal/store"
)

// DefaultMaxAge is Options.MaxAge when it is not set.
const DefaultMaxAge = 5 * time.Minute

// publishTimeout bounds one announcement on the change feed.
const publishTimeout = 5 * time.Second

// nStripes is the number of generation counters (a power of two).
const nStripes = 1 << 14

// Options configure a Cache.
type Options struct {
	// Size is how many entries each table keeps (people for the token
	// table, website sessions for the session table); 0 caches nothing.
	Size int
	// MaxAge is how long an entry is trusted without a change-feed message;
	// DefaultMaxAge when 0.
	MaxAge time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger gets the subscription's start and failures to announce a
	// change; discarded when nil.
	Logger *slog.Logger
}

// Cache is one rcsso instance's hot cache: the tables built on it
// (NewTable, NewSubjectTable) and their coherence through the store's change
// feed. Its methods are safe for concurrent use; a nil *Cache caches nothing
// and announces nothing.
type Cache struct {
	feed   store.ChangeFeed // nil when the store has none
	size   int
	maxAge int64 // ms
	now    func() time.Time
	log    *slog.Logger
	seed   maphash.Seed

	// mu orders Put against invalidations: seq only moves under mu.
	mu      sync.Mutex
	seq     atomic.Uint64
	stripes [nStripes]atomic.Uint32
	tables  []table

	cancel context.CancelFunc
}

// table is what the Cache needs of a Table to drop entries.
type table interface {
	forget(subject string)
	purge()
}

// Snapshot is the Cache's invalidation count before a store read (Snapshot).
type Snapshot uint64

// New returns a Cache for the store st (its change feed, when st has one).
// Call Start to follow the change feed.
func New(st store.Store, o Options) *Cache {
	if o.MaxAge <= 0 {
		o.MaxAge = DefaultMaxAge
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cache{size: max(o.Size, 0), maxAge: o.MaxAge.Milliseconds(), now: o.Now, log: o.Logger, seed: maphash.MakeSeed()}
	c.feed, _ = st.(store.ChangeFeed)
	return c
}

// Start subscribes to the store's change feed, so that changes announced by
// any rcsso instance drop this instance's entries, until ctx is done or
// Close is called. Without a change feed, or with Size 0, it does nothing.
// Errors are the store's (the subscription could not be established).
func (c *Cache) Start(ctx context.Context) error {
	if c == nil || c.feed == nil || c.size == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	if err := c.feed.Subscribe(ctx, c.drop); err != nil {
		cancel()
		return fmt.Errorf("hotcache: following the store's change feed: %w", err)
	}
	c.mu.Lock()
	c.cancel = cancel
	c.mu.Unlock()
	return nil
}

// Close ends the subscription started by Start.
func (c *Cache) Close() {
	if c == nil {
		return
	}
	c.mu.Lock()
	cancel := c.cancel
	c.cancel = nil
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// Snapshot returns the invalidation count; take it before reading the
// store and pass it to Put.
func (c *Cache) Snapshot() Snapshot {
	if c == nil {
		return 0
	}
	return Snapshot(c.seq.Load())
}

// Invalidate drops subject's entries in this instance and announces the
// change on the store's change feed to every other instance. Call it after
// the store write it announces. An error means the announcement failed:
// the other instances keep their entries for up to Options.MaxAge.
func (c *Cache) Invalidate(ctx context.Context, subject string) error {
	if c == nil || subject == "" {
		return nil
	}
	c.drop(subject)
	if c.feed == nil {
		return nil
	}
	// The store write happened: the announcement must not be cut short
	// by a client that hangs up.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if err := c.feed.Publish(ctx, subject); err != nil {
		c.log.Warn("could not announce a change to the other rcsso instances; their caches follow within cache.max_age",
			"subject", subject, "err", err)
		return fmt.Errorf("hotcache: announcing a change: %w", err)
	}
	return nil
}

// drop is the change feed's callback: subject's entries ("" all of them)
// are no longer served, and no record read before now is cached.
func (c *Cache) drop(subject string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq.Add(1)
	if subject == "" {
		for _, t := range c.tables {
			t.purge()
		}
		return
	}
	c.stripe(subject).Add(1)
	for _, t := range c.tables {
		t.forget(subject)
	}
}

func (c *Cache) stripe(subject string) *atomic.Uint32 {
	return &c.stripes[c.stripeIndex(subject)]
}

// stripeIndex is subject's stripe.
func (c *Cache) stripeIndex(subject string) uint16 {
	return uint16(maphash.String(c.seed, subject) & (nStripes - 1))
}

// Table is one kind of entry of a Cache (website sessions, tokens), keyed
// by K and belonging to one subject each. A nil *Table (a nil or disabled
// Cache) caches nothing.
type Table[K comparable, V any] struct {
	c       *Cache
	lru     *lru.Cache[K, entry[V]]
	subject func(K, *V) string
	byKey   bool // K is the subject: Invalidate frees the entry at once
}

// entry is a cached value with its coherence data.
type entry[V any] struct {
	v      V
	at     int64  // unix ms when cached
	gen    uint32 // the subject's stripe generation when cached
	stripe uint16 // the subject's stripe (Get checks it without hashing)
}

// NewTable adds a table of at most Options.Size entries to c, whose entry
// for key k with value v belongs to the person subject(k, &v). It returns
// nil when c is nil or its Size is 0.
func NewTable[K comparable, V any](c *Cache, subject func(K, *V) string) *Table[K, V] {
	return newTable(c, subject, false)
}

// NewSubjectTable is NewTable for entries keyed by their subject.
func NewSubjectTable[V any](c *Cache) *Table[string, V] {
	return newTable(c, func(k string, _ *V) string { return k }, true)
}

func newTable[K comparable, V any](c *Cache, subject func(K, *V) string, byKey bool) *Table[K, V] {
	if c == nil || c.size == 0 {
		return nil
	}
	l, err := lru.New[K, entry[V]](c.size)
	if err != nil {
		panic(err) // only for a size <= 0, excluded above
	}
	t := &Table[K, V]{c: c, lru: l, subject: subject, byKey: byKey}
	c.mu.Lock()
	c.tables = append(c.tables, t)
	c.mu.Unlock()
	return t
}

// Get returns the value cached for k, if it is still current.
func (t *Table[K, V]) Get(k K) (V, bool) {
	var zero V
	if t == nil {
		return zero, false
	}
	e, ok := t.lru.Get(k)
	if !ok {
		return zero, false
	}
	if !t.current(&e) {
		t.lru.Remove(k) // at worst a newer entry put meanwhile: one more miss
		return zero, false
	}
	return e.v, true
}

func (t *Table[K, V]) current(e *entry[V]) bool {
	return t.c.now().UnixMilli()-e.at < t.c.maxAge && e.gen == t.c.stripes[e.stripe].Load()
}

// Put caches v for k unless an invalidation arrived since snap (the value
// may be older than the change it announced); it reports whether it did.
func (t *Table[K, V]) Put(k K, v V, snap Snapshot) bool {
	if t == nil {
		return false
	}
	subject := t.subject(k, &v)
	c := t.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if Snapshot(c.seq.Load()) != snap {
		return false
	}
	i := c.stripeIndex(subject)
	t.lru.Add(k, entry[V]{v: v, at: c.now().UnixMilli(), gen: c.stripes[i].Load(), stripe: i})
	return true
}

// Update changes the entry for k in place with f, if it is cached and
// current; it keeps the entry's age. It reports whether f ran.
func (t *Table[K, V]) Update(k K, f func(*V)) bool {
	if t == nil {
		return false
	}
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	e, ok := t.lru.Peek(k)
	if !ok || !t.current(&e) {
		return false
	}
	f(&e.v)
	t.lru.Add(k, e)
	return true
}

// Len returns the number of entries held, current or not.
func (t *Table[K, V]) Len() int {
	if t == nil {
		return 0
	}
	return t.lru.Len()
}

func (t *Table[K, V]) forget(subject string) {
	if t.byKey {
		if k, ok := any(subject).(K); ok {
			t.lru.Remove(k)
		}
	}
}

func (t *Table[K, V]) purge() { t.lru.Purge() }
