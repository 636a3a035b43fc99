package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/local"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store/sqlite"
	"github.com/rcsso/rcsso/internal/websession"
)

// newHotPathServer is rcsso's API URL with the default store (file-backed
// SQLite), the local identity source and a counting minter, plus one
// website-session cookie for each of people visitors.
func newHotPathServer(tb testing.TB, people int) (*Server, []*http.Cookie, *countingMinter) {
	tb.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, tb.TempDir()+"/hot.db")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	seal, _ := sealer.New(make([]byte, 32))
	m := &countingMinter{}
	br := mint.NewBroker(st, seal, m, linkProv{}, mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour}, nil)
	sessions := websession.New(st, websession.Options{CookieName: "rcsso_session", SameSite: http.SameSiteLaxMode, TTL: time.Hour})
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
// cached: one session lookup and one token lookup in a file-backed SQLite
// store, one AES-GCM open, CORS and the JSON answer.
//
//	go test ./internal/server -run '^$' -bench APIURLHotPath -benchmem
func BenchmarkAPIURLHotPath(b *testing.B) {
	s, cookies, m := newHotPathServer(b, 1)
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
