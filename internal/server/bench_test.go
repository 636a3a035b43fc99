package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// BenchmarkAPIURLHotPath measures the API URL for a visitor with a website
// session (local source, rcsso session cookie) whose Rocket.Chat token is
// cached: one session lookup and one token lookup in a file-backed SQLite
// store, one AES-GCM open, CORS and the JSON answer.
//
//	go test ./internal/server -run '^$' -bench APIURLHotPath -benchmem
func BenchmarkAPIURLHotPath(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, b.TempDir()+"/bench.db")
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	seal, _ := sealer.New(make([]byte, 32))
	br := mint.NewBroker(st, seal, &countingMinter{}, linkProv{}, mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour}, nil)
	sessions := websession.New(st, websession.Options{CookieName: "rcsso_session", SameSite: http.SameSiteLaxMode, TTL: time.Hour})
	rc, _ := rocketchat.New(rocketchat.Options{BaseURL: "http://127.0.0.1:1"})
	pub, _ := url.Parse("http://sso.example.test")
	s := New(Options{PublicURL: pub, RocketChatOrigin: rcOrigin, Identity: identity.Chain{local.New("", st, sessions)},
		Sessions: sessions, Broker: br, Store: st, RC: rc})

	// Log in once to get a session cookie; the first API URL call mints.
	w := httptest.NewRecorder()
	if err := sessions.Start(ctx, w, identity.Identity{Subject: "local:alice", Source: "local", Username: "alice"}); err != nil {
		b.Fatal(err)
	}
	cookie := w.Result().Cookies()[0]
	req := func() *http.Request {
		r := httptest.NewRequest("POST", "/api/rocketchat/token", nil)
		r.Header.Set("Origin", rcOrigin)
		r.AddCookie(cookie)
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
	if m := br.Stats().Minted; m != 1 {
		b.Fatalf("minted %d tokens, want 1", m)
	}
}
