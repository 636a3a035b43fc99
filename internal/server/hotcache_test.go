package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/hotcache"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/header"
	"github.com/rcsso/rcsso/internal/identity/local"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/store/postgres"
	"github.com/rcsso/rcsso/internal/store/redis"
	"github.com/rcsso/rcsso/internal/store/sqlite"
	"github.com/rcsso/rcsso/internal/testing/pgtest"
	"github.com/rcsso/rcsso/internal/testing/redistest"
	"github.com/rcsso/rcsso/internal/websession"
)

// readCounter is a memory store that counts the reads the API URL could
// make (sessions, tokens, links, accounts); its change feed and leases are
// the memory store's.
type readCounter struct {
	*memory.Store
	reads atomic.Int64
}

func (s *readCounter) GetSession(ctx context.Context, h string) (store.Session, error) {
	s.reads.Add(1)
	return s.Store.GetSession(ctx, h)
}

func (s *readCounter) GetToken(ctx context.Context, subject string) (store.Token, error) {
	s.reads.Add(1)
	return s.Store.GetToken(ctx, subject)
}

func (s *readCounter) GetLink(ctx context.Context, subject string) (store.Link, error) {
	s.reads.Add(1)
	return s.Store.GetLink(ctx, subject)
}

func (s *readCounter) GetAccount(ctx context.Context, username string) (store.Account, error) {
	s.reads.Add(1)
	return s.Store.GetAccount(ctx, username)
}

// seqMinter mints a new token value each time.
type seqMinter struct{ n atomic.Int64 }

func (m *seqMinter) Mint(_ context.Context, req mint.Request) (mint.Token, error) {
	return mint.Token{Value: "tok-" + strconv.FormatInt(m.n.Add(1), 10), Kind: mint.LoginToken, UserID: req.Link.UserID}, nil
}

// uniqueProv links each subject to a Rocket.Chat user of its own.
type uniqueProv struct{}

func (uniqueProv) Ensure(_ context.Context, id identity.Identity) (store.Link, error) {
	return store.Link{Subject: id.Subject, UserID: "U-" + id.Subject}, nil
}

// syncProv is uniqueProv that keeps profiles in sync (mint.ProfileSyncer),
// writing the digest to the link as the REST provisioner does.
type syncProv struct {
	st    store.Store
	syncs atomic.Int64
}

func (p *syncProv) Ensure(ctx context.Context, id identity.Identity) (store.Link, error) {
	return uniqueProv{}.Ensure(ctx, id)
}

func (p *syncProv) ProfileDigest(id identity.Identity) string { return id.Name + "|" + id.Email }

func (p *syncProv) Sync(ctx context.Context, id identity.Identity) (bool, error) {
	p.syncs.Add(1)
	_, err := p.st.UpdateLink(ctx, id.Subject, func(l *store.Link) error {
		l.ProfileHash = p.ProfileDigest(id)
		return nil
	})
	return err == nil, err
}

// instance is one rcsso on a store shared with others: its own hot cache
// (following the store's change feed), broker and session manager; the
// header source (trusted from 192.0.2.1, as do sends) and the local source.
func instance(t testing.TB, st store.Store, m mint.Minter, p mint.Provisioner, cacheSize int, rc *rocketchat.Client) *Server {
	t.Helper()
	hot := hotcache.New(st, hotcache.Options{Size: cacheSize})
	if err := hot.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hot.Close)
	seal, _ := sealer.New(make([]byte, 32))
	b := mint.NewBroker(st, seal, m, p, mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour, MinMintInterval: time.Nanosecond, Cache: hot}, nil)
	t.Cleanup(b.WaitSync)
	sessions := websession.New(st, websession.Options{CookieName: "rcsso_session", SameSite: http.SameSiteLaxMode, TTL: time.Hour, Cache: hot})
	if rc == nil {
		rc, _ = rocketchat.New(rocketchat.Options{BaseURL: "http://127.0.0.1:1"})
	}
	pub, _ := url.Parse("http://sso.example.test")
	return New(Options{
		PublicURL:        pub,
		RocketChatOrigin: rcOrigin,
		Identity: identity.Chain{
			header.New(header.Options{UserHeader: "X-Forwarded-User", TrustedProxies: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}}),
			local.New("", st, sessions),
		},
		Sessions:      sessions,
		Broker:        b,
		Store:         st,
		RC:            rc,
		WebhookSecret: webhookSecret,
	})
}

// login starts alice's website session on s and returns its cookie.
func login(t *testing.T, s *Server) *http.Cookie {
	t.Helper()
	w := httptest.NewRecorder()
	id := identity.Identity{Subject: "local:alice", Source: "local", Username: "alice", Name: "Alice", Email: "alice@example.test"}
	if err := s.o.Sessions.Start(t.Context(), w, id); err != nil {
		t.Fatal(err)
	}
	return w.Result().Cookies()[0]
}

// apiURL calls the API URL of s with the cookie (or none) and headers.
func apiURL(s *Server, c *http.Cookie, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/api/rocketchat/token", nil)
	r.RemoteAddr = "192.0.2.1:4000"
	r.Header.Set("Origin", rcOrigin)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	if c != nil {
		r.AddCookie(c)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// within polls cond until it holds or d has passed.
func within(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(5 * time.Millisecond) // a poll interval, not a wait for an event
	}
}

// A visitor whose session and token are cached costs the API URL no store
// read at all, profile sync included.
func TestAPIURLHotPathReadsNoStore(t *testing.T) {
	st := &readCounter{Store: memory.New()}
	p := &syncProv{st: st}
	s := instance(t, st, &countingMinter{}, p, 100, nil)
	c := login(t, s)
	first := apiURL(s, c, nil)
	if first.Code != 200 {
		t.Fatalf("first call: %d %s", first.Code, first.Body)
	}
	s.o.Broker.WaitSync()
	if w := apiURL(s, c, nil); w.Code != 200 { // the cache fills on this call
		t.Fatalf("second call: %d", w.Code)
	}
	s.o.Broker.WaitSync()
	st.reads.Store(0)
	for range 100 {
		w := apiURL(s, c, nil)
		if w.Code != 200 || w.Body.String() != first.Body.String() {
			t.Fatalf("cached call: %d %s, want %s", w.Code, w.Body, first.Body)
		}
	}
	s.o.Broker.WaitSync()
	if n := st.reads.Load(); n != 0 {
		t.Fatalf("100 API URL calls of a cached visitor read the store %d times, want 0", n)
	}
	if n := p.syncs.Load(); n != 1 {
		t.Fatalf("profile synced %d times, want once", n)
	}
}

// openStore opens a store for the test's duration.
func openStore(t *testing.T, c store.Config) store.Store {
	t.Helper()
	st, err := c.Open(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// A logout on instance A is honoured by instance B, which had the
// visitor's session and token cached, within one second: with the
// website session (local source) B answers 401; with a trusted header
// (logout webhook) B mints a new token instead of handing out the
// revoked one.
func TestLogoutHonouredAcrossInstances(t *testing.T) {
	stores := map[string]func(t *testing.T) (store.Store, store.Store){
		"memory": func(*testing.T) (store.Store, store.Store) { st := memory.New(); return st, st },
		// Two handles on one file: two processes, the polled change feed.
		"sqlite": func(t *testing.T) (store.Store, store.Store) {
			path := t.TempDir() + "/rcsso.db"
			open := func() store.Store {
				st, err := sqlite.Open(t.Context(), path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = st.Close() })
				return st
			}
			return open(), open()
		},
		// Two connections (two instances): LISTEN/NOTIFY.
		"postgres": func(t *testing.T) (store.Store, store.Store) {
			url := pgtest.Start(t).CreateDatabase(t)
			return openStore(t, postgres.StoreConfig{Postgres: postgres.Config{URL: url}}), openStore(t, postgres.StoreConfig{Postgres: postgres.Config{URL: url}})
		},
		// Two clients (two instances): pub/sub.
		"redis": func(t *testing.T) (store.Store, store.Store) {
			url := redistest.Start(t)
			return openStore(t, redis.StoreConfig{Redis: redis.Config{URL: url}}), openStore(t, redis.StoreConfig{Redis: redis.Config{URL: url}})
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			stA, stB := open(t)
			m := &seqMinter{}
			a := instance(t, stA, m, uniqueProv{}, 100, nil)
			b := instance(t, stB, m, uniqueProv{}, 100, nil)

			// The website session.
			c := login(t, a)
			for _, s := range []*Server{a, b, a, b} {
				if w := apiURL(s, c, nil); w.Code != 200 {
					t.Fatalf("before the logout: %d %s", w.Code, w.Body)
				}
			}
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/logout", nil)
			r.Header.Set("Sec-Fetch-Site", "same-origin")
			r.AddCookie(c)
			a.ServeHTTP(w, r)
			if w.Code != 200 {
				t.Fatalf("logout on A: %d %s", w.Code, w.Body)
			}
			within(t, time.Second, "B answers 401 after the logout on A", func() bool { return apiURL(b, c, nil).Code == 401 })

			// A trusted header; the website's back end calls the logout webhook on A.
			hdr := map[string]string{"X-Forwarded-User": "bob"}
			before := apiURL(a, nil, hdr)
			if before.Code != 200 {
				t.Fatalf("bob on A: %d %s", before.Code, before.Body)
			}
			if w := apiURL(b, nil, hdr); w.Body.String() != before.Body.String() {
				t.Fatalf("bob on B: %s, want %s", w.Body, before.Body)
			}
			body := `{"subject":"header:bob"}`
			if w := do(a, http.MethodPost, "/webhooks/logout", signed(body, time.Now(), webhookSecret), body); w.Code != 200 {
				t.Fatalf("logout webhook on A: %d %s", w.Code, w.Body)
			}
			within(t, time.Second, "B stops handing out bob's revoked token", func() bool {
				w := apiURL(b, nil, hdr)
				return w.Code == 200 && w.Body.String() != before.Body.String()
			})
		})
	}
}

// The budget of paced Rocket.Chat calls is shared by every instance on the
// store: the 6.2–7.10 web client's calls (each re-validates with GET
// /api/v1/me) on two instances cost Rocket.Chat at most the budget between
// them, and every call is still answered with the token (a held-back check
// counts as passed, as a 429 would). A mint that needs a paced call once
// the budget is spent answers 503 with Retry-After instead of calling.
func TestRocketChatBudgetSharedAcrossInstances(t *testing.T) {
	var me, logins atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/me":
			me.Add(1)
			_, _ = w.Write([]byte(`{"_id":"U1","username":"alice","success":true}`))
		case "/api/v1/login":
			n := logins.Add(1)
			_, _ = w.Write([]byte(`{"status":"success","data":{"userId":"U` + string(rune('0'+n)) + `","authToken":"tok"}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ts.Close)
	st := memory.New()
	client := func() *rocketchat.Client {
		rc, err := rocketchat.New(rocketchat.Options{BaseURL: ts.URL, Budget: &rocketchat.Budget{Counter: st, PerMinute: 3}})
		if err != nil {
			t.Fatal(err)
		}
		return rc
	}
	rcA, rcB := client(), client()
	a := instance(t, st, &loginMinter{ResumeSession: mint.ResumeSession{RC: rcA}}, uniqueProv{}, 100, rcA)
	b := instance(t, st, &loginMinter{ResumeSession: mint.ResumeSession{RC: rcB}}, uniqueProv{}, 100, rcB)

	fetch := map[string]string{"X-Forwarded-User": "alice", "Content-Type": "application/json"}
	if w := apiURL(a, nil, fetch); w.Code != 200 { // one login (a paced call)
		t.Fatalf("first call: %d %s", w.Code, w.Body)
	}
	for i := range 10 {
		s := a
		if i%2 == 1 {
			s = b
		}
		if w := apiURL(s, nil, fetch); w.Code != 200 || !strings.Contains(w.Body.String(), `"loginToken":"tok"`) {
			t.Fatalf("call %d: %d %s", i, w.Code, w.Body)
		}
	}
	if n := me.Load(); n != 3 {
		t.Fatalf("Rocket.Chat got %d /me calls, want the budget of 3", n)
	}

	// Three /login calls a minute: alice took one; carol and dave two more;
	// erin's mint is held back.
	for _, who := range []string{"carol", "dave"} {
		if w := apiURL(b, nil, map[string]string{"X-Forwarded-User": who}); w.Code != 200 {
			t.Fatalf("%s: %d %s", who, w.Code, w.Body)
		}
	}
	w := apiURL(a, nil, map[string]string{"X-Forwarded-User": "erin"})
	if w.Code != 503 || w.Header().Get("Retry-After") == "" || logins.Load() != 3 {
		t.Fatalf("mint beyond the budget: %d (Retry-After %q) after %d logins; want 503 with Retry-After and 3 logins",
			w.Code, w.Header().Get("Retry-After"), logins.Load())
	}
}

// loginMinter mints by logging in (a paced /api/v1/login call), as modes
// oauth and password do.
type loginMinter struct{ mint.ResumeSession }

func (m *loginMinter) Mint(ctx context.Context, req mint.Request) (mint.Token, error) {
	res, err := m.RC.LoginResume(ctx, "a-resume-token-of-"+req.Identity.Subject)
	if err != nil {
		return mint.Token{}, err
	}
	return mint.Token{Value: res.AuthToken, Kind: mint.LoginToken, UserID: res.UserID}, nil
}

// The hot cache stays compact (a website session and a token per person,
// about 0.5 KiB; BenchmarkHotCacheHeap measures 100,000 people) and
// bounded: people beyond cache.size push the least recent out.
func TestHotCacheCompactAndBounded(t *testing.T) {
	const people = 10_000
	heap, held := hotCacheHeap(t, people, people)
	t.Logf("%d people cached: %d bytes of heap, %d B each", held, heap, heap/people)
	if perPerson := heap / people; perPerson > 560 || held != people {
		t.Fatalf("%d people cached in %d bytes (%d B each), want at most 560 B each", held, heap, perPerson)
	}
	if _, held := hotCacheHeap(t, people, people/4); held > people/4 {
		t.Fatalf("%d people cached with cache.size %d", held, people/4)
	}
}
