package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/hotcache"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/local"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/store/sqlite"
	"github.com/rcsso/rcsso/internal/websession"
)

// newHotPathServer is rcsso's API URL with the default store (file-backed
// SQLite), a hot cache of cacheSize people (0: none), the local identity
// source and a counting minter, plus one website-session cookie for each of
// people visitors.
func newHotPathServer(tb testing.TB, people, cacheSize int) (*Server, []*http.Cookie, *countingMinter) {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, tb.TempDir()+"/hot.db")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	seal, _ := sealer.New(make([]byte, 32))
	m := &countingMinter{}
	hot := hotcache.New(st, hotcache.Options{Size: cacheSize})
	if err := hot.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(hot.Close)
	br := mint.NewBroker(st, seal, m, uniqueProv{}, mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour, Cache: hot}, nil)
	sessions := websession.New(st, websession.Options{CookieName: "rcsso_session", SameSite: http.SameSiteLaxMode, TTL: time.Hour, Cache: hot})
	rc, _ := rocketchat.New(rocketchat.Options{BaseURL: "http://127.0.0.1:1"})
	pub, _ := url.Parse("http://sso.example.test")
	s := New(Options{PublicURL: pub, RocketChatOrigin: rcOrigin, Identity: identity.Chain{local.New("", st, sessions)},
		Sessions: sessions, Broker: br, Store: st, RC: rc})
	cookies := make([]*http.Cookie, people)
	for i := range people {
		w := httptest.NewRecorder()
		id := identity.Identity{Subject: "local:u" + strconv.Itoa(i), Source: "local", Username: "u" + strconv.Itoa(i)}
		if err := sessions.Start(ctx, w, id); err != nil {
			tb.Fatal(err)
		}
		cookies[i] = w.Result().Cookies()[0]
	}
	return s, cookies, m
}

// BenchmarkAPIURLHotPath measures the API URL for a visitor with a website
// session (local source, rcsso session cookie) whose Rocket.Chat token is
// cached: with the hot cache (cache.size default) no store read and no
// AES-GCM open, only CORS and the JSON answer; without it (cache.size 0)
// one session lookup and one token lookup in a file-backed SQLite store
// and one AES-GCM open.
//
//	go test ./internal/server -run '^$' -bench APIURLHotPath -benchmem
func BenchmarkAPIURLHotPath(b *testing.B) {
	b.Run("cache", func(b *testing.B) { benchAPIURL(b, 10_000) })
	b.Run("store", func(b *testing.B) { benchAPIURL(b, 0) })
	// bare is the yardstick: a net/http handler that only writes the
	// answer, called the same way.
	b.Run("bare", func(b *testing.B) {
		h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"loginToken":"resume-token-U1"}` + "\n"))
		})
		b.ReportAllocs()
		for b.Loop() {
			r := httptest.NewRequest("POST", "/api/rocketchat/token", nil)
			r.Header.Set("Origin", rcOrigin)
			rw := httptest.NewRecorder()
			h.ServeHTTP(rw, r)
		}
	})
}

func benchAPIURL(b *testing.B, cacheSize int) {
	s, cookies, m := newHotPathServer(b, 1, cacheSize)
	req := func() *http.Request {
		r := httptest.NewRequest("POST", "/api/rocketchat/token", nil)
		r.Header.Set("Origin", rcOrigin)
		r.AddCookie(cookies[0])
		return r
	}
	first := httptest.NewRecorder()
	s.ServeHTTP(first, req())
	if first.Code != 200 {
		b.Fatalf("warm-up: %d %s", first.Code, first.Body)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rw := httptest.NewRecorder()
		s.ServeHTTP(rw, req())
		if rw.Code != 200 {
			b.Fatalf("status %d", rw.Code)
		}
	}
	b.StopTimer()
	if n := m.n.Load(); n != 1 {
		b.Fatalf("minted %d tokens, want 1", n)
	}
}

// hotCacheHeap caches people visitors in one instance's hot cache through
// the API URL (website session and token each) and returns the live heap
// the cache added, in bytes, with the number of tokens it holds.
func hotCacheHeap(tb testing.TB, people, size int) (heap uint64, held int) {
	tb.Helper()
	ctx := context.Background()
	st := memory.New()
	m := &seqMinter{}
	// Instance A logs everybody in and mints (no cache); B serves them.
	a := instance(tb, st, m, &syncProv{st: st}, 0, nil)
	cookies := make([]*http.Cookie, people)
	for i := range people {
		w := httptest.NewRecorder()
		name := "user" + strconv.Itoa(i)
		id := identity.Identity{Subject: "local:" + name, Source: "local", Username: name, Name: "User Number " + strconv.Itoa(i), Email: name + "@example.test"}
		if err := a.o.Sessions.Start(ctx, w, id); err != nil {
			tb.Fatal(err)
		}
		cookies[i] = w.Result().Cookies()[0]
		if _, err := a.o.Broker.Token(ctx, id, false); err != nil {
			tb.Fatal(err)
		}
	}
	a.o.Broker.WaitSync()
	b := instance(tb, st, m, &syncProv{st: st}, size, nil)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, c := range cookies {
		if w := apiURL(b, c, nil); w.Code != 200 {
			tb.Fatalf("API URL: %d %s", w.Code, w.Body)
		}
	}
	b.o.Broker.WaitSync()
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(cookies)
	return after.HeapAlloc - before.HeapAlloc, b.o.Broker.CachedPeople()
}

// BenchmarkHotCacheHeap reports the live heap one instance's hot cache
// takes for 100,000 people (each a website session and a token), the
// number behind cache.size:
//
//	go test ./internal/server -run '^$' -bench HotCacheHeap -benchtime 1x
func BenchmarkHotCacheHeap(b *testing.B) {
	const people = 100_000
	for b.Loop() {
		heap, held := hotCacheHeap(b, people, people)
		if held != people {
			b.Fatalf("%d people cached, want %d", held, people)
		}
		b.ReportMetric(float64(heap)/(1<<20), "MiB/100k-people")
		b.ReportMetric(float64(heap)/people, "B/person")
	}
}
