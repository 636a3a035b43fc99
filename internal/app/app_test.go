package app

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/sqlite"
)

// emulated starts the emulator with ec (admin PAT "pat", fast bcrypt) and
// returns it with an rcsso configuration pointing at it: the PAT, the
// createToken secret "s", a memory store, and a header identity source
// trusting 192.0.2.1 (X-Forwarded-User, X-Forwarded-Email).
func emulated(t testing.TB, ec rcemu.Config) (*rcemu.Server, config.Config) {
	t.Helper()
	ec.AdminPassword, ec.AdminPAT, ec.BcryptCost = "pw", "pat", bcrypt.MinCost
	emu, err := rcemu.New(ec)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	cfg := config.Default()
	cfg.RocketChat.URL = srv.URL
	cfg.RocketChat.AdminUserID, cfg.RocketChat.AdminToken, cfg.RocketChat.CreateTokensSecret = emu.AdminID(), "pat", "s"
	cfg.Identity = []config.IdentitySource{headerSource()}
	cfg.Store = config.Store{Type: "memory"}
	cfg.Audit.Path = "off"
	cfg.Diagnostics.Token = testDiagnosticsToken
	return emu, cfg
}

// testDiagnosticsToken is diagnostics.token in the tests' configurations.
const testDiagnosticsToken = "test-diagnostics-token-0123456789abcdef"

// headerSource is a header identity source trusting 192.0.2.1
// (X-Forwarded-User, X-Forwarded-Email).
func headerSource() config.IdentitySource {
	return config.IdentitySource{Type: "header", Options: map[string]any{"user_header": "X-Forwarded-User",
		"email_header": "X-Forwarded-Email", "trusted_proxies": []string{"192.0.2.1"}}}
}

// build is Build that fails the test on error and closes at its end.
func build(t testing.TB, cfg config.Config) *App {
	t.Helper()
	a, err := Build(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// visit is an API URL call from Rocket.Chat's origin for a person the
// trusted proxy vouches for.
func visit(a *App, user, email string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/api/rocketchat/token", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	r.Header.Set("Origin", a.Config.RocketChat.URL)
	r.Header.Set("X-Forwarded-User", user)
	if email != "" {
		r.Header.Set("X-Forwarded-Email", email)
	}
	w := httptest.NewRecorder()
	a.Handler.ServeHTTP(w, r)
	return w
}

// Capability detection: with Rocket.Chat reachable, a configuration that
// cannot mint refuses to start and says what to change on which side.
func TestCapabilityDetection(t *testing.T) {
	cases := []struct {
		name    string
		emu     rcemu.Config
		secret  string
		pat     string
		wantErr string
	}{
		{"8.x good", rcemu.Config{Profile: "8.x", CreateTokensSecret: "s3cret"}, "s3cret", "pat", ""},
		{"8.x wrong secret", rcemu.Config{Profile: "8.x", CreateTokensSecret: "s3cret"}, "other", "pat", "CREATE_TOKENS_FOR_USERS_SECRET"},
		{"8.x no secret", rcemu.Config{Profile: "8.x", CreateTokensSecret: "s3cret"}, "", "pat", "CREATE_TOKENS_FOR_USERS_SECRET=<secret>"},
		{"7.x env flag", rcemu.Config{Profile: "7.x", CreateTokensForUsers: true}, "", "pat", ""},
		{"7.x without env flag", rcemu.Config{Profile: "7.x"}, "", "pat", "CREATE_TOKENS_FOR_USERS=true"},
		{"7.13 bug", rcemu.Config{Profile: "7.x", CreateTokensForUsers: true, Bug40598: true}, "", "pat", ""},
		{"bad PAT", rcemu.Config{Profile: "8.x", CreateTokensSecret: "s3cret"}, "s3cret", "wrong-pat", "personal access token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			emu, cfg := emulated(t, c.emu)
			cfg.RocketChat.AdminToken, cfg.RocketChat.CreateTokensSecret = c.pat, c.secret
			a, err := Build(t.Context(), cfg, slog.New(slog.DiscardHandler))
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("refused a working setup: %v", err)
				}
				a.Close()
				if u, _ := emu.UserByUsername("admin"); u.ResumeTokens != 0 {
					t.Fatalf("the capability check left %d tokens on the service account", u.ResumeTokens)
				}
				return
			}
			if err == nil {
				a.Close()
				t.Fatal("started with a setup that cannot mint")
			}
			if !strings.Contains(err.Error(), c.wantErr) || strings.Contains(err.Error(), c.secret+" ") && c.secret != "" {
				t.Fatalf("error %q should say %q", err, c.wantErr)
			}
		})
	}
}

// Rocket.Chat down at start-up is not fatal: /readyz reports it.
func TestStartsWhileRocketChatIsDown(t *testing.T) {
	cfg := config.Default()
	cfg.RocketChat.URL = "http://127.0.0.1:1"
	cfg.RocketChat.AdminUserID, cfg.RocketChat.AdminToken = "u", "t"
	cfg.Store = config.Store{Type: "memory"}
	a, err := Build(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	w := httptest.NewRecorder()
	a.Handler.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
	if w.Code != 503 || !strings.Contains(w.Body.String(), "rocketchat") {
		t.Fatalf("readyz: %d %s", w.Code, w.Body)
	}
}

// 1,000 page views by one person mint one token: measured end to end over
// HTTP against the emulator (users.createToken calls and the person's
// resume tokens in Rocket.Chat).
func TestThousandPageViewsMintOnce(t *testing.T) {
	emu, cfg := emulated(t, rcemu.Config{CreateTokensSecret: "s"}) // rate limiter on
	a := build(t, cfg)
	base := emu.Stats().CreateTokenCalls
	for i := range 1000 {
		if w := visit(a, "pat", ""); w.Code != 200 {
			t.Fatalf("view %d: %d %s", i, w.Code, w.Body)
		}
	}
	u, _ := emu.UserByUsername("pat")
	if n := emu.Stats().CreateTokenCalls - base; n != 1 || u.ResumeTokens != 1 {
		t.Fatalf("1000 page views: users.createToken %d times, %d resume tokens in Rocket.Chat; want 1 and 1", n, u.ResumeTokens)
	}
	t.Logf("1000 page views: %d users.createToken call(s), %d resume token(s) held by Rocket.Chat", emu.Stats().CreateTokenCalls-base, u.ResumeTokens)
	mw := httptest.NewRecorder()
	a.Metrics.Handler().ServeHTTP(mw, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{"rcsso_tokens_minted_total 1\n", "rcsso_tokens_reused_total 999\n", `rcsso_http_requests_total{code="200",route="api_url"} 1000`} {
		if !strings.Contains(mw.Body.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// Two rcsso processes behind a load balancer share one store: 20
// simultaneous first visits of one person, split between them, create one
// Rocket.Chat user and mint one token.
func TestTwoProcessesMintOnce(t *testing.T) {
	emu, cfg := emulated(t, rcemu.Config{CreateTokensSecret: "s"})
	cfg.Store = config.Store{Type: "sqlite", Options: map[string]any{"path": t.TempDir() + "/shared.db"}, EncryptionKey: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
	apps := []*App{build(t, cfg), build(t, cfg)}
	base := emu.Stats()
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Go(func() { codes[i] = visit(apps[i%2], "quinn", "quinn@example.test").Code })
	}
	wg.Wait()
	for i, c := range codes {
		if c != 200 {
			t.Fatalf("request %d: %d", i, c)
		}
	}
	st := emu.Stats()
	u, _ := emu.UserByUsername("quinn")
	if emu.UserCount() != 1 || st.UsersCreateCalls-base.UsersCreateCalls != 1 || st.CreateTokenCalls-base.CreateTokenCalls != 1 || u.ResumeTokens != 1 {
		t.Fatalf("two processes: users %d, users.create %d, createToken %d, tokens %d; want 1 each",
			emu.UserCount(), st.UsersCreateCalls-base.UsersCreateCalls, st.CreateTokenCalls-base.CreateTokenCalls, u.ResumeTokens)
	}
}

// Minting mode password end to end over HTTP: Rocket.Chat's default
// two-factor settings on, no createToken permission needed.
func TestPasswordModeOverHTTP(t *testing.T) {
	emu, cfg := emulated(t, rcemu.Config{TwoFactor: true})
	cfg.Minting.Mode, cfg.RocketChat.CreateTokensSecret = "password", ""
	a := build(t, cfg)
	for range 3 {
		if w := visit(a, "vera", "vera@example.test"); w.Code != 200 || !strings.Contains(w.Body.String(), "loginToken") {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	u, _ := emu.UserByUsername("vera")
	if u.ResumeTokens != 1 || emu.Stats().CreateTokenCalls != 0 || emu.Stats().LoginCalls != 1 {
		t.Fatalf("tokens %d, createToken %d, logins %d", u.ResumeTokens, emu.Stats().CreateTokenCalls, emu.Stats().LoginCalls)
	}
}

// The diagnostics page shows rcsso doctor's checks: what is wrong on
// which side.
func TestDiagnosticsPage(t *testing.T) {
	ecfg := rcemu.Config{CreateTokensSecret: "s",
		Settings: map[string]any{"Iframe_Integration_receive_enable": true, "Iframe_Integration_receive_origin": "https://shop.example.com, https://www.example.com",
			"Iframe_Restrict_Access": true}}
	ecfg.EnableIframeAuth("https://old.example.com/login", "https://old.example.com/api", "POST")
	_, cfg := emulated(t, ecfg)
	cfg.Website.Origins = []string{"https://www.example.com"}
	cfg.Diagnostics.Token = "operator-token-operator-token-operator"
	a := build(t, cfg)
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/diagnostics", nil)
	r.Header.Set("Authorization", "Bearer "+cfg.Diagnostics.Token)
	a.Handler.ServeHTTP(w, r)
	body := w.Body.String()
	for _, want := range []string{
		"set API URL to http://127.0.0.1:8080/api/rocketchat/token",
		"remove the spaces around https://www.example.com",
		"X-Frame-Options: sameorigin",
		"users.createToken accepts rcsso&#39;s call",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("diagnostics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}

// Mode password checks the service account at start-up too.
func TestPasswordModeRefusesBadCredentials(t *testing.T) {
	_, cfg := emulated(t, rcemu.Config{})
	cfg.Minting.Mode, cfg.RocketChat.AdminToken = "password", "not-the-pat"
	if a, err := Build(t.Context(), cfg, slog.New(slog.DiscardHandler)); err == nil {
		a.Close()
		t.Fatal("started with a rejected personal access token")
	} else if !strings.Contains(err.Error(), "personal access token") {
		t.Fatalf("error %q does not say what to fix", err)
	}
}

// An LDAP directory that is down is a warning on /readyz naming the
// source, not unreadiness: people already logged in keep their chat, and
// a load balancer must not take every instance out. Anonymous probes see
// "warn" without the reason.
func TestReadyzWarnsWhenDirectoryDown(t *testing.T) {
	_, cfg := emulated(t, rcemu.Config{Profile: "8.x", CreateTokensSecret: "s"})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "ldap://" + l.Addr().String()
	l.Close() // nothing listens there now
	cfg.Identity = append(cfg.Identity, config.IdentitySource{Type: "ldap", Name: "corp", Options: map[string]any{
		"url": down, "bind_dn": "cn=search,dc=example,dc=test", "bind_password": "pw",
		"user_base_dn": "ou=people,dc=example,dc=test", "timeout": "2s"}})
	a := build(t, cfg)
	code, body := readyz(a)
	if code != 200 || !strings.Contains(body, `"identity_corp":"warn: ldap corp:`) {
		t.Fatalf("/readyz (operator) with the directory down = %d %s", code, body)
	}
	w := httptest.NewRecorder()
	a.Handler.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"identity_corp":"warn"`) || strings.Contains(w.Body.String(), l.Addr().String()) {
		t.Fatalf("/readyz (anonymous) with the directory down = %d %s", w.Code, w.Body)
	}
}

// Shutdown: Close waits for a background profile sync in flight before it
// closes the store, so the sync's store write (the profile now in
// Rocket.Chat) is not lost between its Rocket.Chat write and its own.
// Before Close drained the syncs, the store was closed under the sync and
// its write failed ("sql: database is closed").
func TestCloseWaitsForProfileSync(t *testing.T) {
	emu, err := rcemu.New(rcemu.Config{Profile: "8.x", AdminPassword: "pw", AdminPAT: "pat", CreateTokensSecret: "s", BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	gate := emu.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/users.update" {
			arrived <- struct{}{}
			<-release
		}
		gate.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := config.Default()
	cfg.RocketChat.URL = srv.URL
	cfg.RocketChat.AdminUserID, cfg.RocketChat.AdminToken, cfg.RocketChat.CreateTokensSecret = emu.AdminID(), "pat", "s"
	cfg.Identity = []config.IdentitySource{{Type: "header", Options: map[string]any{"user_header": "X-Forwarded-User",
		"email_header": "X-Forwarded-Email", "email_verified": true, "trusted_proxies": []string{"192.0.2.1"}}}}
	path := filepath.Join(t.TempDir(), "rcsso.db")
	cfg.Store = config.Store{Type: "sqlite", Options: map[string]any{"path": path}}
	cfg.Audit.Path = "off"
	a, err := Build(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if w := visit(a, "bob", "bob@example.test"); w.Code != 200 {
		t.Fatalf("first visit: %d %s", w.Code, w.Body)
	}
	a.Broker.WaitSync()
	before, err := a.Store.GetLink(t.Context(), "header:bob")
	if err != nil {
		t.Fatal(err)
	}
	// Profile sync writes at most once a minute per person: the last one
	// was two minutes ago.
	if _, err := a.Store.UpdateLink(t.Context(), "header:bob", func(l *store.Link) error {
		l.ProfileSyncedAt = l.ProfileSyncedAt.Add(-2 * time.Minute)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if w := visit(a, "bob", "bob@new.example.test"); w.Code != 200 { // a changed profile: a sync in the background
		t.Fatalf("second visit: %d %s", w.Code, w.Body)
	}
	select { // the sync waits in Rocket.Chat
	case <-arrived:
	case <-time.After(30 * time.Second):
		t.Fatal("no profile sync reached Rocket.Chat")
	}
	closing := make(chan error, 1)
	go func() { closing <- a.Close() }()
	close(release)
	if err := <-closing; err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	after, err := st.GetLink(t.Context(), "header:bob")
	if err != nil {
		t.Fatal(err)
	}
	if after.ProfileHash == before.ProfileHash {
		t.Fatalf("the profile sync cut off by Close left the store's profile digest as it was (%q)", after.ProfileHash)
	}
}
