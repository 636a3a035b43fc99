package app

import (
	"net/http/httptest"
	"testing"

	"github.com/rcsso/rcsso/internal/rcemu"
)

// BenchmarkAPIURLApp is the API URL of a whole rcsso (app.Build: every
// middleware, metrics, the header identity source, the create-token
// provisioner with profile sync, the hot cache) for a person whose token
// is cached, as TestLoadHotPath calls it, without the network.
//
//	go test ./internal/app -run '^$' -bench APIURLApp -benchmem
func BenchmarkAPIURLApp(b *testing.B) {
	_, cfg := emulated(b, rcemu.Config{Profile: "8.x", CreateTokensSecret: "s", DisableRateLimit: true})
	a := build(b, cfg)
	if w := visit(a, "bench", ""); w.Code != 200 {
		b.Fatalf("warm-up: %d %s", w.Code, w.Body)
	}
	a.Broker.WaitSync()
	b.ReportAllocs()
	for b.Loop() {
		r := httptest.NewRequest("POST", "/api/rocketchat/token", nil)
		r.RemoteAddr = "192.0.2.1:1234"
		r.Header.Set("Origin", a.Config.RocketChat.URL)
		r.Header.Set("X-Forwarded-User", "bench")
		w := httptest.NewRecorder()
		a.Handler.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}
