//go:build load

package app

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/sqlite"
	"github.com/rcsso/rcsso/internal/testing/pgtest"
	"github.com/rcsso/rcsso/internal/testing/redistest"
)

// Load runs for the performance targets of issue 10, client (wrk, a
// separate process) and servers on this machine. Run them with
//
//	go test -tags load -run TestLoad -v -timeout 30m ./internal/app
//
// (RCSSO_TEST_PG_BIN and RCSSO_TEST_REDIS_SERVER as scripts/test.sh sets
// them; wrk from Debian's package). Knobs: RCSSO_LOAD_SECONDS (default 10),
// RCSSO_LOAD_CONNS (default 64), RCSSO_LOAD_PEOPLE (default 1000).

// loadEnv reads an integer knob.
func loadEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// storeNames is names, or the comma-separated RCSSO_LOAD_STORES.
func storeNames(names ...string) []string {
	if v := os.Getenv("RCSSO_LOAD_STORES"); v != "" {
		return strings.Split(v, ",")
	}
	return names
}

// stores are the store types the hot path is measured on, with a block
// for each (servers started for t).
func loadStores(t *testing.T) map[string]config.Store {
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	return map[string]config.Store{
		"memory": {Type: "memory"},
		"sqlite": {Type: "sqlite", Options: map[string]any{"path": filepath.Join(t.TempDir(), "load.db")}, EncryptionKey: key},
		"postgres": {Type: "postgres", EncryptionKey: key,
			Options: map[string]any{"postgres": map[string]any{"url": pgtest.Start(t).CreateDatabase(t)}}},
		"redis": {Type: "redis", EncryptionKey: key, Options: map[string]any{"redis": map[string]any{"url": redistest.Start(t)}}},
	}
}

// serve serves h on a loopback port until t ends and returns its URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = ServeHTTP(ctx, ln, h, slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

// wrkScript rotates X-Forwarded-User over people and sends Rocket.Chat's
// Origin, as the web client's API URL call does (POST, no body).
func wrkScript(t *testing.T, origin, prefix string, people int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "apiurl.lua")
	lua := fmt.Sprintf(`local n = 0
wrk.method = "POST"
wrk.headers["Origin"] = %q
request = function()
  n = (n %% %d) + 1
  wrk.headers["X-Forwarded-User"] = string.format("%sp%%06d", n)
  return wrk.format()
end
`, origin, people, prefix)
	if err := os.WriteFile(p, []byte(lua), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

var wrkRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
var wrkNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
var wrkP99 = regexp.MustCompile(`\s99%\s+([0-9.]+)(us|ms|s)`)

// wrk runs wrk against url and returns requests/s and p99 latency.
func wrk(t *testing.T, url, script string) (float64, time.Duration) {
	t.Helper()
	secs, conns := loadEnv("RCSSO_LOAD_SECONDS", 10), loadEnv("RCSSO_LOAD_CONNS", 64)
	out, err := exec.Command("wrk", "-t2", fmt.Sprintf("-c%d", conns), fmt.Sprintf("-d%ds", secs), "--latency", "-s", script, url).CombinedOutput()
	if err != nil {
		t.Fatalf("wrk: %v\n%s", err, out)
	}
	if m := wrkNon2xx.FindSubmatch(out); m != nil {
		t.Fatalf("wrk saw %s non-2xx answers:\n%s", m[1], out)
	}
	m := wrkRPS.FindSubmatch(out)
	if m == nil {
		t.Fatalf("no Requests/sec in wrk's output:\n%s", out)
	}
	rps, _ := strconv.ParseFloat(string(m[1]), 64)
	var p99 time.Duration
	if m := wrkP99.FindSubmatch(out); m != nil {
		v, _ := strconv.ParseFloat(string(m[1]), 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[string(m[2])]
		p99 = time.Duration(v * float64(unit))
	}
	return rps, p99
}

// bareHandler answers what the API URL answers for a cached token (the
// same JSON, the same CORS and security headers) and nothing else: the
// floor a Go HTTP server reaches on this machine.
func bareHandler(origin string) http.Handler {
	body := []byte(`{"loginToken":"` + strings.Repeat("A", 43) + `"}` + "\n")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Add("Vary", "Origin")
		h.Set("Cache-Control", "no-store")
		if o := r.Header.Get("Origin"); o == origin {
			h.Set("Access-Control-Allow-Origin", o)
			h.Set("Access-Control-Allow-Credentials", "true")
		}
		h.Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

// loadApp builds rcsso on st against emu with the header identity source
// (trusting 127.0.0.1, where wrk runs).
func loadApp(t *testing.T, rcURL string, emu *rcemu.Server, st config.Store) *App {
	t.Helper()
	cfg := config.Default()
	cfg.Audit.Path = "off"
	cfg.LogLevel = "error"
	cfg.RocketChat.URL = rcURL
	cfg.RocketChat.AdminUserID, cfg.RocketChat.AdminToken, cfg.RocketChat.CreateTokensSecret = emu.AdminID(), "pat", "s"
	cfg.Identity = []config.IdentitySource{{Type: "header", Options: map[string]any{"user_header": "X-Forwarded-User", "trusted_proxies": []string{"127.0.0.1"}}}}
	cfg.Store = st
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("RCSSO_LOAD_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	a, err := Build(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// TestLoadHotPath: the API URL with a cached token against a bare net/http
// handler answering the same JSON with the same headers, side by side in
// one run, on every store. Target: ≥ 0.8× the bare handler's requests/s.
func TestLoadHotPath(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk not installed (apt-get install wrk)")
	}
	emu, err := rcemu.New(rcemu.Config{Profile: "8.x", AdminPassword: "pw", AdminPAT: "pat", CreateTokensSecret: "s", BcryptCost: bcrypt.MinCost, DisableRateLimit: true})
	if err != nil {
		t.Fatal(err)
	}
	rc := httptest.NewServer(emu.Handler())
	t.Cleanup(rc.Close)
	people := loadEnv("RCSSO_LOAD_PEOPLE", 1000)
	bare := serve(t, bareHandler(rc.URL))
	type row struct {
		store          string
		rcsso, bare    float64
		rcssoP99, bP99 time.Duration
	}
	var rows []row
	stores := loadStores(t)
	for _, name := range storeNames("memory", "sqlite", "postgres", "redis") {
		a := loadApp(t, rc.URL, emu, stores[name])
		url := serve(t, a.Handler) + "/api/rocketchat/token"
		script := wrkScript(t, rc.URL, name+"-", people) // each store its own people on the one emulator
		// Warm: one mint per person, so every measured request is a cache hit.
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := 1; i <= people; i++ {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				req, _ := http.NewRequest("POST", url, nil)
				req.Header.Set("Origin", rc.URL)
				req.Header.Set("X-Forwarded-User", fmt.Sprintf("%s-p%06d", name, i))
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != 200 {
					var b []byte
					if resp != nil {
						b, _ = io.ReadAll(resp.Body)
					}
					t.Errorf("warming p%06d: %v %s %v", i, resp.Status, b, err)
				}
				if resp != nil {
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		// Side by side: bare, rcsso, bare again; the bare figure is the mean.
		b1, bp1 := wrk(t, bare, script)
		r, rp := wrk(t, url, script)
		b2, bp2 := wrk(t, bare, script)
		rows = append(rows, row{name, r, (b1 + b2) / 2, rp, max(bp1, bp2)})
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "API URL with a cached token (%d people, wrk -t2 -c%d, %ds each):\n", people, loadEnv("RCSSO_LOAD_CONNS", 64), loadEnv("RCSSO_LOAD_SECONDS", 10))
	fmt.Fprintf(&sb, "%-9s %12s %12s %7s %10s %10s\n", "store", "rcsso req/s", "bare req/s", "ratio", "rcsso p99", "bare p99")
	for _, r := range rows {
		fmt.Fprintf(&sb, "%-9s %12.0f %12.0f %7.2f %10s %10s\n", r.store, r.rcsso, r.bare, r.rcsso/r.bare, r.rcssoP99, r.bP99)
	}
	t.Log("\n" + sb.String())
}

// TestLoadFirstVisits: first visits (provision + mint) at a steady 50 new
// people per second against an emulator that adds 20 ms to every Rocket.Chat
// call; reports p50, p99 and max.
func TestLoadFirstVisits(t *testing.T) {
	emu, err := rcemu.New(rcemu.Config{Profile: "8.x", AdminPassword: "pw", AdminPAT: "pat", CreateTokensSecret: "s", BcryptCost: bcrypt.MinCost, DisableRateLimit: true})
	if err != nil {
		t.Fatal(err)
	}
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond) // the added Rocket.Chat latency under test
		emu.Handler().ServeHTTP(w, r)
	})
	rc := httptest.NewServer(slow)
	t.Cleanup(rc.Close)
	secs, rate := loadEnv("RCSSO_LOAD_SECONDS", 10), 50
	stores := loadStores(t)
	var sb strings.Builder
	fmt.Fprintf(&sb, "first visits at %d new people/s for %ds, Rocket.Chat +20 ms per call:\n", rate, secs)
	for _, name := range storeNames("sqlite", "postgres", "redis") {
		a := loadApp(t, rc.URL, emu, stores[name])
		url := serve(t, a.Handler) + "/api/rocketchat/token"
		var mu sync.Mutex
		var lat []time.Duration
		failures := 0
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / time.Duration(rate))
		for i := range secs * rate {
			<-tick.C
			wg.Go(func() {
				req, _ := http.NewRequest("POST", url, nil)
				req.Header.Set("Origin", rc.URL)
				req.Header.Set("X-Forwarded-User", fmt.Sprintf("%s-new%06d", name, i))
				start := time.Now()
				resp, err := http.DefaultClient.Do(req)
				d := time.Since(start)
				ok := err == nil && resp.StatusCode == 200
				if resp != nil {
					resp.Body.Close()
				}
				mu.Lock()
				lat = append(lat, d)
				if !ok {
					failures++
				}
				mu.Unlock()
			})
		}
		tick.Stop()
		wg.Wait()
		slices.Sort(lat)
		q := func(f float64) time.Duration { return lat[int(float64(len(lat)-1)*f)].Round(time.Millisecond) }
		fmt.Fprintf(&sb, "%-9s %d visits: p50 %v, p99 %v, max %v, failures %d\n", name, len(lat), q(0.5), q(0.99), lat[len(lat)-1].Round(time.Millisecond), failures)
		if failures > 0 {
			t.Errorf("%s: %d first visits failed", name, failures)
		}
	}
	t.Log("\n" + sb.String())
}

// rss reads a process's resident set size and its peak (VmRSS, VmHWM) in KiB.
func rss(pid int) (cur, peak int) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		n, _ := strconv.Atoi(fields[1])
		switch fields[0] {
		case "VmRSS:":
			cur = n
		case "VmHWM:":
			peak = n
		}
	}
	return cur, peak
}

// TestLoadMemory: the resident memory of a real rcsso process serving
// 100,000 different people whose tokens are cached (RCSSO_LOAD_PEOPLE
// overrides the count). Target: RSS below 64 MiB.
func TestLoadMemory(t *testing.T) {
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Skip("wrk not installed (apt-get install wrk)")
	}
	people := 100_000
	if v := os.Getenv("RCSSO_LOAD_PEOPLE"); v != "" {
		people = loadEnv("RCSSO_LOAD_PEOPLE", people)
	}
	// RCSSO_LOAD_CACHE_SIZE: cache.size of the rcsso under test (default
	// rcsso's own default, 10000; set it to people to hold everyone).
	cacheSize := loadEnv("RCSSO_LOAD_CACHE_SIZE", 10000)
	dir := t.TempDir()
	bin := filepath.Join(dir, "rcsso")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/rcsso/rcsso/cmd/rcsso").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	key := "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	dbPath := filepath.Join(dir, "rcsso.db")
	populate(t, dbPath, key, people)

	emu, err := rcemu.New(rcemu.Config{Profile: "8.x", AdminPassword: "pw", AdminPAT: "pat", CreateTokensSecret: "s", BcryptCost: bcrypt.MinCost, DisableRateLimit: true})
	if err != nil {
		t.Fatal(err)
	}
	rc := httptest.NewServer(emu.Handler())
	t.Cleanup(rc.Close)
	cfgPath := filepath.Join(dir, "rcsso.yaml")
	cfg := fmt.Sprintf("log_level: error\nrocketchat:\n  url: %s\n  admin_user_id: %s\n  admin_token: pat\n  create_tokens_secret: s\n"+
		"identity:\n  - type: header\n    user_header: X-Forwarded-User\n    trusted_proxies: [127.0.0.1]\n"+
		"store:\n  type: sqlite\n  path: %s\n  encryption_key: %s\ncache:\n  size: %d\naudit:\n  path: \"off\"\n", rc.URL, emu.AdminID(), dbPath, key, cacheSize)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "serve", "--config", cfgPath, "--listen", addr)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RCSSO_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rcsso did not come up")
		}
		time.Sleep(50 * time.Millisecond) // polling a process we started, with a deadline
	}
	idle, _ := rss(cmd.Process.Pid)
	// Every person once (wrk's script walks them in order), then again.
	script := wrkScript(t, rc.URL, "", people)
	rps, p99 := wrk(t, "http://"+addr+"/api/rocketchat/token", script)
	cur, peak := rss(cmd.Process.Pid)
	t.Logf("%d people, cache.size %d: RSS %d KiB idle, %d KiB after, peak %d KiB (%.0f req/s, p99 %v)", people, cacheSize, idle, cur, peak, rps, p99)
	if peak > 64*1024 {
		t.Errorf("peak RSS %d KiB is above 64 MiB", peak)
	}
}

// populate writes people links and fresh cached tokens (sealed with key,
// as the broker seals them) into a new SQLite store at path.
func populate(t *testing.T, path, key string, people int) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	k, _ := config.DecodeKey(key)
	seal, _ := sealer.New(k)
	now := time.Now().UTC()
	// The profile rcsso last wrote to Rocket.Chat, as provisioning records
	// it: the header source gives a user name only, so it is every person's.
	prov := provision.New(nil, nil, nil, provision.Config{}, nil)
	for i := 1; i <= people; i++ {
		subject := fmt.Sprintf("header:p%06d", i)
		uid := fmt.Sprintf("U%016d", i)
		digest := prov.ProfileDigest(identity.Identity{Subject: subject, Source: "header", Username: fmt.Sprintf("p%06d", i)})
		if _, err := st.UpdateLink(t.Context(), subject, func(l *store.Link) error {
			l.UserID, l.Username = uid, fmt.Sprintf("p%06d", i)
			l.ProfileHash, l.ProfileSyncedAt = digest, now
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		tok := "loginToken\x00" + fmt.Sprintf("%043d", i)
		if err := st.PutToken(t.Context(), store.Token{Subject: subject, UserID: uid, Ciphertext: seal.Seal([]byte(tok), subject), MintedAt: now, ValidatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
}
