package redis

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/storetest"
	"github.com/rcsso/rcsso/internal/testing/redistest"
)

// open opens a Store on rawURL for t (closed when the test ends).
func open(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := cfg.Open(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConformance runs the store suite, each subtest on a redis-server of
// its own.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Config{URL: redistest.Start(t)}.Open(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// aclRules are the package comment's ACL rules for the default prefix.
const aclRules = `~rcsso:* &rcsso:changes +ping +info +hello +client|setname
	+get +set +getdel +del +exists +hget +hset +hsetnx +hgetall +hdel +incrby
	+pexpire +pexpireat +pexpiretime +sadd +srem +smembers +srandmember
	+multi +exec +eval +evalsha +publish +subscribe +scan`

// TestConformanceACLUser runs the suite as a user restricted by the ACL
// rules the package comment documents, so the list is complete.
func TestConformanceACLUser(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		admin := open(t, Config{URL: redistest.Start(t)})
		args := []any{"ACL", "SETUSER", "rcsso", "on", ">" + secret}
		for _, r := range strings.Fields(aclRules) {
			args = append(args, r)
		}
		if err := admin.rdb.Do(t.Context(), args...).Err(); err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse("redis://" + admin.rdb.Options().Addr + "/0")
		u.User = url.UserPassword("rcsso", secret)
		s, err := Config{URL: u.String()}.Open(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// until polls f every 10 ms until it returns nil, failing t after 10 s.
func until(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %v after 10 s", what, err)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, bounded by the deadline
	}
}

// TestRestartUnderLoad: writers keep calling UpdateLink, PutToken and
// Count while redis-server (appendfsync always) is stopped and restarted,
// once gracefully and once killed. Every write that returned nil is there
// afterwards, the same Store handle works again, and the change feed
// subscriber is told "" and then hears later publishes.
func TestRestartUnderLoad(t *testing.T) {
	srv := redistest.StartServer(t, redistest.Options{Durable: true})
	s := open(t, Config{URL: srv.URL()})
	ctx := t.Context()

	var feedMu sync.Mutex
	var heard []string
	if err := s.Subscribe(ctx, func(sub string) {
		feedMu.Lock()
		heard = append(heard, sub)
		feedMu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	heardSince := func(from int, want string) error {
		feedMu.Lock()
		defer feedMu.Unlock()
		if from <= len(heard) && slices.Contains(heard[from:], want) {
			return nil
		}
		return fmt.Errorf("the subscriber has not heard %q", want)
	}
	feedLen := func() int { feedMu.Lock(); defer feedMu.Unlock(); return len(heard) }

	const writers = 4
	var (
		mu      sync.Mutex
		links   []string // subjects whose UpdateLink returned nil
		tokens  []string // subjects whose PutToken returned nil
		counts  [writers]int64
		failed  atomic.Int64
		writes  atomic.Int64
		stopped = make(chan struct{})
		wg      sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stopped:
					return
				default:
				}
				sub := fmt.Sprintf("load:w%d-%d", w, i)
				opCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
				_, lerr := s.UpdateLink(opCtx, sub, func(l *store.Link) error {
					l.UserID, l.Username = "u-"+sub, sub
					return nil
				})
				terr := s.PutToken(opCtx, store.Token{Subject: sub, UserID: "u-" + sub, Ciphertext: []byte(sub), MintedAt: time.Now()})
				_, _, cerr := s.Count(opCtx, fmt.Sprintf("load:w%d", w), 1, time.Hour)
				cancel()
				mu.Lock()
				if lerr == nil {
					links = append(links, sub)
				}
				if terr == nil {
					tokens = append(tokens, sub)
				}
				if cerr == nil {
					counts[w]++
				}
				mu.Unlock()
				for _, err := range []error{lerr, terr, cerr} {
					if err == nil {
						writes.Add(1)
					} else {
						failed.Add(1)
					}
				}
			}
		})
	}
	moreWrites := func(n int64) {
		t.Helper()
		mark := writes.Load()
		until(t, "writes after the restart", func() error {
			if writes.Load() < mark+n {
				return fmt.Errorf("%d acknowledged writes", writes.Load()-mark)
			}
			return nil
		})
	}
	for _, restart := range []struct {
		name string
		stop func()
	}{{"SIGTERM", srv.Stop}, {"SIGKILL", srv.Kill}} {
		moreWrites(100)
		from := feedLen()
		restart.stop()
		srv.Restart()
		moreWrites(100) // the same handle works again
		until(t, "the subscriber told to drop its cache after "+restart.name, func() error { return heardSince(from, "") })
		// Publishes after the restart are heard (repeated: a publish sent
		// before the feed resubscribed is lost, by design).
		mark := feedLen()
		subject := "after-" + restart.name
		until(t, "a publish after "+restart.name, func() error {
			if err := s.Publish(ctx, subject); err != nil {
				return err
			}
			return heardSince(mark, subject)
		})
	}
	close(stopped)
	wg.Wait()

	for _, sub := range links {
		if l, err := s.GetLink(ctx, sub); err != nil || l.UserID != "u-"+sub {
			t.Errorf("acknowledged UpdateLink(%s) lost: %+v, %v", sub, l, err)
		}
		if l, err := s.LinkByUserID(ctx, "u-"+sub); err != nil || l.Subject != sub {
			t.Errorf("acknowledged UpdateLink(%s) lost its user index: %+v, %v", sub, l, err)
		}
	}
	for _, sub := range tokens {
		if tok, err := s.GetToken(ctx, sub); err != nil || string(tok.Ciphertext) != sub {
			t.Errorf("acknowledged PutToken(%s) lost: %v", sub, err)
		}
	}
	for w, acked := range counts {
		// A Count that failed may still have been applied: at least the
		// acknowledged ones.
		n, _, err := s.Count(ctx, fmt.Sprintf("load:w%d", w), 0, time.Hour)
		if err != nil || n < acked {
			t.Errorf("counter of writer %d = %d, %v; %d increments were acknowledged", w, n, err, acked)
		}
	}
	t.Logf("%d writes acknowledged (%d links, %d tokens), %d failed during the restarts",
		writes.Load(), len(links), len(tokens), failed.Load())
}

// TestLockAcrossHosts: two Store handles on one server (two rcsso hosts)
// never hold one lease together, and a holder whose lease ran out can
// neither renew nor release its successor's (fencing by token).
func TestLockAcrossHosts(t *testing.T) {
	u := redistest.Start(t)
	a, b := open(t, Config{URL: u}), open(t, Config{URL: u})
	ctx := t.Context()

	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		host := []*Store{a, b}[i%2]
		wg.Go(func() {
			if _, ok, err := host.TryLock(ctx, "mint:race", time.Minute); err != nil {
				t.Errorf("TryLock: %v", err)
			} else if ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d holders of one lease across two hosts, want 1", wins.Load())
	}

	tokA, ok, err := a.TryLock(ctx, "mint:alice", 50*time.Millisecond)
	if err != nil || !ok {
		t.Fatalf("host A TryLock = %v, %v", ok, err)
	}
	if _, ok, _ := b.TryLock(ctx, "mint:alice", time.Minute); ok {
		t.Fatal("host B got a lease host A holds")
	}
	var tokB string
	until(t, "host B taking the lease after A's ran out", func() error {
		var ok bool
		tokB, ok, err = b.TryLock(ctx, "mint:alice", time.Minute)
		if err == nil && !ok {
			err = errors.New("not granted")
		}
		return err
	})
	// Host A wakes up late and still believes it holds the lease.
	if ok, err := a.Renew(ctx, "mint:alice", tokA, time.Minute); err != nil || ok {
		t.Fatalf("A renewed B's lease with its stale token: %v, %v", ok, err)
	}
	if err := a.Unlock(ctx, "mint:alice", tokA); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.TryLock(ctx, "mint:alice", time.Minute); ok {
		t.Fatal("A's stale Unlock released B's lease")
	}
	if ok, err := b.Renew(ctx, "mint:alice", tokB, time.Minute); err != nil || !ok {
		t.Fatalf("B renewing its own lease = %v, %v", ok, err)
	}
	if err := b.Unlock(ctx, "mint:alice", tokB); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.TryLock(ctx, "mint:alice", time.Minute); !ok {
		t.Fatal("the lease B released is not free")
	}
}

// TestChangeFeedAcrossInstances: what one instance publishes reaches
// another within a second (a logout honoured everywhere), and a quiet
// subscription, pinged, neither drops its cache nor stops delivering.
func TestChangeFeedAcrossInstances(t *testing.T) {
	u := redistest.Start(t)
	a, b := open(t, Config{URL: u}), open(t, Config{URL: u})
	b.feedCheck = 50 * time.Millisecond
	ctx := t.Context()
	got := make(chan string, 100)
	if err := b.Subscribe(ctx, func(sub string) { got <- sub }); err != nil {
		t.Fatal(err)
	}
	quiet := time.NewTimer(20 * b.feedCheck) // 20 check periods without traffic
	select {
	case sub := <-got:
		t.Fatalf("a quiet subscription delivered %q", sub)
	case <-quiet.C:
	}
	start := time.Now()
	if err := a.Publish(ctx, "local:alice"); err != nil {
		t.Fatal(err)
	}
	select {
	case sub := <-got:
		if sub != "local:alice" {
			t.Fatalf("heard %q, want local:alice", sub)
		}
		t.Logf("publish to delivery on another instance: %v", time.Since(start))
		if d := time.Since(start); d > time.Second {
			t.Fatalf("delivery took %v, want under a second", d)
		}
	case <-time.After(time.Second):
		t.Fatal("another instance did not hear the publish within a second")
	}
}

// TestKeyPrefixes: two deployments with different key prefixes share a
// database without seeing each other's records or changes.
func TestKeyPrefixes(t *testing.T) {
	u := redistest.Start(t)
	a, b := open(t, Config{URL: u, KeyPrefix: "a:"}), open(t, Config{URL: u, KeyPrefix: "b:"})
	ctx := t.Context()
	if err := a.PutToken(ctx, store.Token{Subject: "local:alice", Ciphertext: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.GetToken(ctx, "local:alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("prefix b: sees prefix a's token (err = %v)", err)
	}
	got := make(chan string, 10)
	if err := b.Subscribe(ctx, func(sub string) { got <- sub }); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, "from-a"); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "from-b"); err != nil {
		t.Fatal(err)
	}
	if sub := <-got; sub != "from-b" {
		t.Fatalf("prefix b's subscriber heard %q first, want from-b", sub)
	}
	keys, err := a.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "a:") && !strings.HasPrefix(k, "b:") {
			t.Errorf("key %q outside both prefixes", k)
		}
	}
}

// TestSessionsOfSubject: the per-subject index follows sessions moved to
// another subject, expires with the subject's last session and sheds
// entries of sessions that are gone.
func TestSessionsOfSubject(t *testing.T) {
	s := open(t, Config{URL: redistest.Start(t)})
	ctx := t.Context()
	sess := func(id, subject string, exp time.Time) store.Session {
		return store.Session{IDHash: id, Subject: subject, ExpiresAt: exp}
	}
	hour := time.Now().Add(time.Hour)
	for _, x := range []store.Session{sess("h1", "local:alice", hour), sess("h1", "local:bob", hour)} {
		if err := s.PutSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.DeleteSessionsBySubject(ctx, "local:alice"); err != nil || n != 0 {
		t.Fatalf("DeleteSessionsBySubject(alice) after h1 moved to bob = %d, %v; want 0", n, err)
	}
	if _, err := s.GetSession(ctx, "h1"); err != nil {
		t.Fatalf("bob's session was deleted with alice's: %v", err)
	}
	if n, err := s.DeleteSessionsBySubject(ctx, "local:bob"); err != nil || n != 1 {
		t.Fatalf("DeleteSessionsBySubject(bob) = %d, %v; want 1", n, err)
	}

	// The index expires with the latest session.
	later := time.Now().Add(2 * time.Hour).Truncate(time.Millisecond)
	for _, x := range []store.Session{sess("c1", "local:carol", later), sess("c2", "local:carol", hour)} {
		if err := s.PutSession(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	at, err := s.rdb.PExpireTime(ctx, s.key("sessions-of", "local:carol")).Result()
	if err != nil || at != time.Duration(later.UnixMilli())*time.Millisecond {
		t.Fatalf("sessions-of expires at %v (%v), want the latest session's end %v", at, err, later.UnixMilli())
	}

	// 100 sessions end; later logins of the subject shed their entries.
	soon := time.Now().Add(50 * time.Millisecond)
	for i := range 100 {
		if err := s.PutSession(ctx, sess(fmt.Sprint("old", i), "local:dave", soon)); err != nil {
			t.Fatal(err)
		}
	}
	until(t, "the short sessions ending", func() error {
		if _, err := s.GetSession(ctx, "old99"); err == nil {
			return errors.New("still live")
		}
		return nil
	})
	for i := range 30 {
		if err := s.PutSession(ctx, sess(fmt.Sprint("new", i), "local:dave", hour)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.rdb.SCard(ctx, s.key("sessions-of", "local:dave")).Result(); err != nil || n > 80 {
		t.Fatalf("sessions-of holds %d entries (%v) for 30 live sessions after 100 ended; want them shed", n, err)
	}
	if n, err := s.DeleteSessionsBySubject(ctx, "local:dave"); err != nil || n != 30 {
		t.Fatalf("DeleteSessionsBySubject(dave) = %d, %v; want 30", n, err)
	}
}

// TestStaleUserIndex: a link-user entry whose subject no longer holds the
// user id (written by hand, or left by an older rcsso) neither answers
// LinkByUserID nor blocks another subject from the user id.
func TestStaleUserIndex(t *testing.T) {
	s := open(t, Config{URL: redistest.Start(t)})
	ctx := t.Context()
	if _, err := s.UpdateLink(ctx, "local:alice", func(l *store.Link) error { l.UserID = "u-alice"; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.Set(ctx, s.key("link-user", "u-other"), "local:alice", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LinkByUserID(ctx, "u-other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("LinkByUserID(stale entry) err = %v, want ErrNotFound", err)
	}
	if _, err := s.UpdateLink(ctx, "local:bob", func(l *store.Link) error { l.UserID = "u-other"; return nil }); err != nil {
		t.Fatalf("a stale entry blocked bob: %v", err)
	}
	if l, err := s.LinkByUserID(ctx, "u-other"); err != nil || l.Subject != "local:bob" {
		t.Fatalf("LinkByUserID(u-other) = %+v, %v; want bob's link", l, err)
	}
}

// TestUpdateLinkGivesUp: an update that always loses the race (another
// write lands between its read and its commit) fails after
// maxLinkAttempts runs of the updater instead of looping for ever.
func TestUpdateLinkGivesUp(t *testing.T) {
	s := open(t, Config{URL: redistest.Start(t)})
	ctx := t.Context()
	runs := 0
	_, err := s.UpdateLink(ctx, "local:alice", func(l *store.Link) error {
		runs++
		// Someone else's write (a new revision) after this read.
		return s.rdb.HSet(ctx, s.key("link", "local:alice"), "rev", fmt.Sprint("other-", runs)).Err()
	})
	if err == nil || runs != maxLinkAttempts || !strings.Contains(err.Error(), "giving up") {
		t.Fatalf("UpdateLink losing every race: %d runs, err = %v", runs, err)
	}
}

// TestChangeFeedServerStopsAnswering: a subscription whose server stops
// answering without closing the connection (here: CLIENT PAUSE) is given
// up after feedDead silent checks; the subscriber is told "" and hears
// publishes once the server answers again.
func TestChangeFeedServerStopsAnswering(t *testing.T) {
	u := redistest.Start(t)
	s := open(t, Config{URL: u})
	s.feedCheck = 50 * time.Millisecond
	ctx := t.Context()
	var mu sync.Mutex
	var heard []string
	if err := s.Subscribe(ctx, func(sub string) { mu.Lock(); heard = append(heard, sub); mu.Unlock() }); err != nil {
		t.Fatal(err)
	}
	if err := s.rdb.Do(ctx, "CLIENT", "PAUSE", 1000, "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	until(t, "the subscriber told to drop its cache", func() error {
		mu.Lock()
		defer mu.Unlock()
		if !slices.Contains(heard, "") {
			return errors.New("not told")
		}
		return nil
	})
	until(t, "a publish after the pause", func() error {
		if err := s.Publish(ctx, "local:alice"); err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if !slices.Contains(heard, "local:alice") {
			return errors.New("not heard")
		}
		return nil
	})
}

// BenchmarkHotPath measures the per-request lookups (GetSession then
// GetToken, two round trips) against a local redis-server holding 10k
// sessions and tokens; compare with sqlite's BenchmarkHotPath.
func BenchmarkHotPath(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	s := open(b, Config{URL: redistest.Start(b)})
	now := time.Now()
	ct := make([]byte, 120) // ~ an AES-GCM sealed Rocket.Chat token
	ids := make([]string, n)
	for i := range n {
		sub := fmt.Sprintf("local:user%05d", i)
		ids[i] = fmt.Sprintf("%043d", i)
		if err := s.PutSession(ctx, store.Session{IDHash: ids[i], Subject: sub, Source: "local",
			Username: "user", Name: "User", Email: "user@example.org", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			b.Fatal(err)
		}
		if err := s.PutToken(ctx, store.Token{Subject: sub, UserID: "aBcDeFgHiJkLmNoPq", Ciphertext: ct,
			MintedAt: now, ValidatedAt: now}); err != nil {
			b.Fatal(err)
		}
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
