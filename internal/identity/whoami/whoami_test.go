package whoami

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
)

const meURL = "https://www.example.com/api/me"

// handlerTransport serves requests in memory, so tests can run inside a
// synctest bubble (fake clock) without sockets.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// counting wraps a handler and counts its calls.
type counting struct {
	h     http.HandlerFunc
	calls atomic.Int64
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.calls.Add(1)
	c.h(w, r)
}

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// newSource returns a source talking to h in memory, with its log buffer.
func newSource(t testing.TB, cfg Options, h http.Handler) (*Source, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if cfg.URL == "" {
		cfg.URL = meURL
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Transport: handlerTransport{h}}
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s, logs
}

// visitor is a request of a visitor with the given cookie header.
func visitor(cookies string) *http.Request {
	r := httptest.NewRequest("GET", "https://chat.example.com/api/sso", nil)
	if cookies != "" {
		r.Header.Set("Cookie", cookies)
	}
	return r
}

const secret = "s3cr3t-session-value-7f9a"

func TestIdentifyAnswers(t *testing.T) {
	nested := claims.Mapping{Subject: "user.id", Username: "user.login", Email: "user.email",
		Roles: "user.roles", RoleMap: map[string]string{"staff": "moderator"}}
	tests := []struct {
		name    string
		mapping claims.Mapping
		maxBody int64
		h       http.HandlerFunc
		wantSub string // identity expected
		notIn   bool   // ErrNotLoggedIn expected
		errHas  string // upstream error expected, containing this
	}{
		{name: "200 standard claims", h: answer(200, `{"sub":"u1","preferred_username":"alice","email":"a@example.com"}`), wantSub: "site:u1"},
		{name: "200 nested numeric id", mapping: nested, h: answer(200, `{"user":{"id":12345678901234567890,"login":"bob","roles":["staff"]}}`), wantSub: "site:12345678901234567890"},
		{name: "201 counts as 2xx", h: answer(201, `{"sub":"u1"}`), wantSub: "site:u1"},
		{name: "200 user null", mapping: nested, h: answer(200, `{"user":null}`), notIn: true},
		{name: "200 empty object", h: answer(200, `{}`), notIn: true},
		{name: "200 subject null", h: answer(200, `{"sub":null,"email":"a@example.com"}`), notIn: true},
		{name: "401", h: answer(401, `{"error":"login required"}`), notIn: true},
		{name: "403", h: answer(403, ``), notIn: true},
		{name: "500", h: answer(500, `{"sub":"u1"}`), errHas: "answered 500"},
		{name: "502", h: answer(502, `bad gateway`), errHas: meURL + " answered 502"},
		{name: "404", h: answer(404, `{}`), errHas: "answered 404"},
		{name: "302 to the login page", h: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/login", http.StatusFound)
		}, errHas: "answered 302 (redirects are not followed"},
		{name: "HTML login page", h: answer(200, `<!doctype html><title>Login</title>`), errHas: "not JSON"},
		{name: "204 empty", h: answer(204, ``), errHas: "not JSON"},
		{name: "array", h: answer(200, `[{"sub":"u1"}]`), errHas: "not an object (array)"},
		{name: "null", h: answer(200, `null`), errHas: "not an object (null)"},
		{name: "string", h: answer(200, `"u1"`), errHas: "not an object (string)"},
		{name: "trailing garbage", h: answer(200, `{"sub":"u1"} {"sub":"u2"}`), errHas: "trailing data"},
		{name: "body too large", maxBody: 1024, h: answer(200, `{"sub":"u1","pad":"`+strings.Repeat("x", 1024)+`"}`), errHas: "larger than 1024 bytes"},
		{name: "huge body, default limit", h: answer(200, `{"sub":"u1","pad":"`+strings.Repeat("x", DefaultMaxBody)+`"}`), errHas: "larger than 65536 bytes"},
		{name: "body at the limit", maxBody: 64, h: answer(200, `{"sub":"u1","pad":"`+strings.Repeat("x", 64-21)+`"}`), wantSub: "site:u1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, logs := newSource(t, Options{Name: "site", Mapping: tc.mapping, MaxBody: tc.maxBody}, tc.h)
			id, err := s.Identify(visitor("session=" + secret))
			switch {
			case tc.wantSub != "":
				if err != nil || id.Subject != tc.wantSub || id.Source != "site" {
					t.Fatalf("got %+v, %v; want subject %q", id, err, tc.wantSub)
				}
			case tc.notIn:
				if !errors.Is(err, identity.ErrNotLoggedIn) || errors.Is(err, ErrUpstream) {
					t.Fatalf("err = %v, want ErrNotLoggedIn", err)
				}
			default:
				if err == nil || errors.Is(err, identity.ErrNotLoggedIn) || !errors.Is(err, ErrUpstream) {
					t.Fatalf("err = %v, want an upstream error", err)
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %q, want it to contain %q", err, tc.errHas)
				}
				if !strings.Contains(logs.String(), "whoami endpoint failed") {
					t.Errorf("failure not logged: %s", logs)
				}
			}
			if strings.Contains(logs.String(), secret) {
				t.Errorf("cookie value logged: %s", logs)
			}
		})
	}
}

func TestNothingToForward(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Options
		cookies string
		header  string
	}{
		{"no cookies at all", Options{}, "", ""},
		{"only other cookies", Options{Cookies: []string{"session"}}, "_ga=GA1.2.3; theme=dark", ""},
		{"header configured but absent", Options{Cookies: []string{"session"}, Headers: []string{"Authorization"}}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &counting{h: answer(200, `{"sub":"u1"}`)}
			s, _ := newSource(t, tc.cfg, h)
			if _, err := s.Identify(visitor(tc.cookies)); err != identity.ErrNotLoggedIn {
				t.Fatalf("err = %v, want exactly ErrNotLoggedIn", err)
			}
			if n := h.calls.Load(); n != 0 {
				t.Fatalf("endpoint called %d times", n)
			}
		})
	}
}

// TestRealServer goes over a socket: forwarding, redirects, refused
// connections.
func TestRealServer(t *testing.T) {
	var (
		mu        sync.Mutex
		gotCookie []string
		gotAuth   []string
		gotOther  string
		followed  atomic.Int64
	)
	mux := http.NewServeMux()
	mux.HandleFunc("/api/me", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotCookie, gotAuth, gotOther = r.Header.Values("Cookie"), r.Header.Values("Authorization"), r.Header.Get("X-Other")
		mu.Unlock()
		answer(200, `{"sub":"u1"}`)(w, r)
	})
	mux.HandleFunc("/api/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/api/me", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/api/me2", func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	logs := &logBuffer{}
	newReal := func(path string, cookies, headers []string) *Source {
		jar := &recordingJar{}
		s, err := New(Options{Name: "site", URL: srv.URL + path, Cookies: cookies, Headers: headers,
			HTTPClient: &http.Client{Jar: jar}, Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	t.Run("only named cookies and headers are forwarded", func(t *testing.T) {
		s := newReal("/api/me", []string{"session", "remember"}, []string{"authorization"})
		r := visitor(`_ga=GA1.2.3; session=` + secret + `; theme=dark; remember="quoted"`)
		r.Header.Set("Authorization", "Bearer abc")
		r.Header.Set("X-Other", "nope")
		if _, err := s.Identify(r); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(gotCookie) != 1 || gotCookie[0] != `session=`+secret+`; remember="quoted"` {
			t.Errorf("forwarded cookies %q", gotCookie)
		}
		if len(gotAuth) != 1 || gotAuth[0] != "Bearer abc" || gotOther != "" {
			t.Errorf("forwarded headers: auth %q, other %q", gotAuth, gotOther)
		}
	})
	t.Run("all cookies when none are named", func(t *testing.T) {
		s := newReal("/api/me", nil, nil)
		if _, err := s.Identify(visitor("a=1; b=2")); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(gotCookie) != 1 || gotCookie[0] != "a=1; b=2" || len(gotAuth) != 0 {
			t.Errorf("forwarded cookies %q, auth %q", gotCookie, gotAuth)
		}
	})
	t.Run("redirect not followed", func(t *testing.T) {
		s := newReal("/api/moved", nil, nil)
		_, err := s.Identify(visitor("session=" + secret))
		if !errors.Is(err, ErrUpstream) || !strings.Contains(err.Error(), "answered 307") {
			t.Fatalf("err = %v", err)
		}
		if followed.Load() != 0 {
			t.Fatal("redirect followed")
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		s, err := New(Options{URL: dead.URL + "/api/me", Logger: slog.New(slog.NewTextHandler(logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Identify(visitor("session=" + secret))
		if errors.Is(err, identity.ErrNotLoggedIn) || !errors.Is(err, ErrUpstream) || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("err = %v", err)
		}
	})
	if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), "Bearer abc") {
		t.Errorf("secret logged: %s", logs)
	}
}

// recordingJar would add cookies of its own if the source used it.
type recordingJar struct{}

func (recordingJar) SetCookies(*url.URL, []*http.Cookie) {}
func (recordingJar) Cookies(*url.URL) []*http.Cookie {
	return []*http.Cookie{{Name: "jar", Value: "leak"}}
}

func TestTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		blocked := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
		s, _ := newSource(t, Options{}, blocked)
		start := time.Now()
		_, err := s.Identify(visitor("session=x"))
		if errors.Is(err, identity.ErrNotLoggedIn) || !errors.Is(err, ErrUpstream) || !strings.Contains(err.Error(), "did not answer within 3s") {
			t.Fatalf("err = %v", err)
		}
		if d := time.Since(start); d != DefaultTimeout {
			t.Fatalf("gave up after %v, want %v", d, DefaultTimeout)
		}
	})
}

func TestCallerGoesAway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := &counting{h: func(w http.ResponseWriter, r *http.Request) {
			<-release
			answer(200, `{"sub":"u1"}`)(w, r)
		}}
		s, _ := newSource(t, Options{}, h)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() {
			_, err := s.Identify(visitor("session=x").WithContext(ctx))
			done <- err
		}()
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) || errors.Is(err, identity.ErrNotLoggedIn) {
			t.Fatalf("err = %v", err)
		}
		close(release) // the shared call still completes and is cached
		synctest.Wait()
		if _, err := s.Identify(visitor("session=x")); err != nil || h.calls.Load() != 1 {
			t.Fatalf("after: %v, %d calls", err, h.calls.Load())
		}
	})
}

func TestCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		status := atomic.Int64{}
		status.Store(200)
		h := &counting{h: func(w http.ResponseWriter, r *http.Request) {
			answer(int(status.Load()), `{"sub":"u1","roles":["a"]}`)(w, r)
		}}
		s, _ := newSource(t, Options{Mapping: claims.Mapping{Roles: "roles", RoleMap: map[string]string{"a": "admin"}}}, h)
		step := func(name, cookies string, wantCalls int64, wantErr error) {
			t.Helper()
			id, err := s.Identify(visitor(cookies))
			if wantErr == nil && (err != nil || id.Subject != "whoami:u1") {
				t.Fatalf("%s: %+v, %v", name, id, err)
			}
			if wantErr != nil && !errors.Is(err, wantErr) {
				t.Fatalf("%s: err = %v, want %v", name, err, wantErr)
			}
			if n := h.calls.Load(); n != wantCalls {
				t.Fatalf("%s: %d calls, want %d", name, n, wantCalls)
			}
			if err == nil {
				id.Roles[0] = "mutated" // must not reach the cache
			}
		}
		step("first", "session=a", 1, nil)
		step("cache hit", "session=a", 1, nil)
		time.Sleep(DefaultCacheTTL - time.Second)
		step("still cached", "session=a", 1, nil)
		step("other visitor", "session=b", 2, nil)
		time.Sleep(time.Second)
		step("expired", "session=a", 3, nil)
		if id, _ := s.Identify(visitor("session=a")); id.Roles[0] != "admin" {
			t.Fatalf("cached roles changed: %q", id.Roles)
		}

		status.Store(401)
		step("401", "session=c", 4, identity.ErrNotLoggedIn)
		step("401 cached", "session=c", 4, identity.ErrNotLoggedIn)
		time.Sleep(MaxNegativeTTL)
		step("401 cache expired", "session=c", 5, identity.ErrNotLoggedIn)

		status.Store(500)
		step("500", "session=d", 6, ErrUpstream)
		step("500 not cached", "session=d", 7, ErrUpstream)
	})
}

func TestCacheDisabled(t *testing.T) {
	h := &counting{h: answer(200, `{"sub":"u1"}`)}
	s, _ := newSource(t, Options{CacheTTL: -1}, h)
	for range 3 {
		if _, err := s.Identify(visitor("session=a")); err != nil {
			t.Fatal(err)
		}
	}
	if n := h.calls.Load(); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
}

func TestCacheEviction(t *testing.T) {
	c := newCache(3)
	now := time.Unix(0, 0)
	for _, k := range []string{"a", "b", "c", "a", "d"} {
		c.put(k, result{id: identity.Identity{Subject: k}}, now.Add(time.Minute))
	}
	if c.len() != 3 {
		t.Fatalf("len %d", c.len())
	}
	if _, ok := c.get("b", now); ok {
		t.Error("oldest entry b not evicted")
	}
	for _, k := range []string{"c", "a", "d"} {
		if r, ok := c.get(k, now); !ok || r.id.Subject != k {
			t.Errorf("%s missing", k)
		}
	}
	if _, ok := c.get("a", now.Add(time.Minute)); ok || c.len() != 2 {
		t.Error("expired entry served or kept")
	}
}

func TestCacheKeyUnambiguous(t *testing.T) {
	keys := map[string]string{}
	for _, f := range []fields{
		{{cookie: true, name: "a", value: "bc"}},
		{{cookie: true, name: "ab", value: "c"}},
		{{cookie: false, name: "a", value: "bc"}},
		{{cookie: true, name: "a", value: "bc", quoted: true}},
		{{cookie: true, name: "a", value: "b"}, {cookie: true, name: "c", value: ""}},
	} {
		k := f.key()
		if prev, dup := keys[k]; dup {
			t.Fatalf("%v and %s share a cache key", f, prev)
		}
		keys[k] = fmt.Sprint(f)
	}
}

func TestSingleflight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := &counting{h: func(w http.ResponseWriter, r *http.Request) {
			<-release
			answer(200, `{"sub":"u1","roles":"a"}`)(w, r)
		}}
		s, _ := newSource(t, Options{CacheTTL: -1, Mapping: claims.Mapping{Roles: "roles", RoleMap: map[string]string{"a": "admin"}}}, h)
		var wg sync.WaitGroup
		ids := make([]identity.Identity, 50)
		errs := make([]error, 50)
		for i := range 50 {
			wg.Go(func() { ids[i], errs[i] = s.Identify(visitor("session=same")) })
		}
		synctest.Wait() // all 50 are waiting
		if n := h.calls.Load(); n != 1 {
			t.Fatalf("%d upstream calls while in flight, want 1", n)
		}
		close(release)
		wg.Wait()
		for i := range 50 {
			if errs[i] != nil || ids[i].Subject != "whoami:u1" {
				t.Fatalf("caller %d: %+v %v", i, ids[i], errs[i])
			}
		}
		ids[0].Roles[0] = "mutated"
		if ids[1].Roles[0] != "admin" {
			t.Fatal("callers share the roles slice")
		}
		if n := h.calls.Load(); n != 1 {
			t.Fatalf("%d upstream calls, want 1", n)
		}
	})
}

func TestNewValidation(t *testing.T) {
	for name, cfg := range map[string]Options{
		"no URL":            {},
		"relative URL":      {URL: "/api/me"},
		"ftp URL":           {URL: "ftp://www.example.com/me"},
		"cookie header":     {URL: meURL, Headers: []string{"cookie"}},
		"host header":       {URL: meURL, Headers: []string{"Host"}},
		"empty header name": {URL: meURL, Headers: []string{""}},
		"negative timeout":  {URL: meURL, Timeout: -time.Second},
		"negative max body": {URL: meURL, MaxBody: -1},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := New(cfg); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	headers := []string{"authorization"}
	s, err := New(Options{URL: meURL, Headers: headers})
	if err != nil {
		t.Fatal(err)
	}
	if headers[0] != "authorization" || s.Name() != "whoami" || s.cfg.Timeout != DefaultTimeout ||
		s.cfg.MaxBody != DefaultMaxBody || s.cfg.CacheTTL != DefaultCacheTTL || s.negativeTTL != MaxNegativeTTL {
		t.Fatalf("defaults: %+v (caller's slice %q)", s.cfg, headers)
	}
}

// FuzzDecode: any body maps to an identity with the source prefix, to "not
// logged in", or to a garbage error; never a panic.
func FuzzDecode(f *testing.F) {
	for _, b := range []string{`{"sub":"u1"}`, `{"user":{"id":7}}`, `{"user":null}`, `null`, `[]`, `"x"`,
		`{"sub":1e400}`, `{"sub":"a"} x`, `<html>`, ``, `{"user":{"id":{"deep":[1,2,{"x":null}]}}}`} {
		f.Add([]byte(b))
	}
	m := claims.Mapping{Subject: "user.id", Username: "user.login", Roles: "user.roles", RoleMap: map[string]string{"a": "admin"}}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, mapping := range []claims.Mapping{{}, m} {
			id, err := decode(body, "site", mapping)
			if err == nil {
				if !strings.HasPrefix(id.Subject, "site:") || len(id.Subject) <= len("site:") {
					t.Fatalf("subject %q", id.Subject)
				}
				continue
			}
			if errors.Is(err, identity.ErrNotLoggedIn) != errors.Is(err, claims.ErrMissingSubject) {
				t.Fatalf("inconsistent error %v", err)
			}
		}
	})
}
