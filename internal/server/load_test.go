//go:build load

package server

import (
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TestLoadAPIURL drives the API URL over loopback TCP with keep-alive
// clients: 200 website sessions with cached tokens, RCSSO_LOAD_WORKERS
// concurrent clients (default 32) for RCSSO_LOAD_SECONDS (default 10), with
// a hot cache of RCSSO_LOAD_CACHE people (default 10000, cache.size's
// default; 0 reads the store on every request).
//
//	go test -tags load -run TestLoadAPIURL -v ./internal/server
func TestLoadAPIURL(t *testing.T) {
	const people = 200
	s, cookies, m := newHotPathServer(t, people, envInt("RCSSO_LOAD_CACHE", 10_000))
	srv := httptest.NewServer(s)
	defer srv.Close()
	workers := envInt("RCSSO_LOAD_WORKERS", 32)
	dur := time.Duration(envInt("RCSSO_LOAD_SECONDS", 10)) * time.Second
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	client := &http.Client{Transport: tr}
	call := func(i int) (time.Duration, bool) {
		req, _ := http.NewRequest("POST", srv.URL+"/api/rocketchat/token", nil)
		req.Header.Set("Origin", rcOrigin)
		req.AddCookie(cookies[i%people])
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, false
		}
		_, _ = resp.Body.Read(make([]byte, 128))
		resp.Body.Close()
		return time.Since(start), resp.StatusCode == 200
	}
	for i := range people { // warm: one mint per person
		if _, ok := call(i); !ok {
			t.Fatal("warm-up failed")
		}
	}
	var mu sync.Mutex
	var lat []time.Duration
	failures := 0
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1<<16)
			bad := 0
			for i := w; time.Now().Before(deadline); i += workers {
				d, ok := call(i)
				if !ok {
					bad++
				}
				local = append(local, d)
			}
			mu.Lock()
			lat = append(lat, local...)
			failures += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(lat)
	p := func(q float64) time.Duration { return lat[int(float64(len(lat)-1)*q)] }
	t.Logf("API URL load: %d workers, %v: %d requests, %.0f req/s, p50 %v, p99 %v, max %v, failures %d, tokens minted %d for %d people",
		workers, dur, len(lat), float64(len(lat))/dur.Seconds(), p(0.50), p(0.99), lat[len(lat)-1], failures, m.n.Load(), people)
	if failures > 0 || m.n.Load() != people {
		t.Fatalf("failures %d, minted %d", failures, m.n.Load())
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
