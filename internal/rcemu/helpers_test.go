package rcemu

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/testing/mongotest"
)

const (
	testAdminPW  = "admin-password"
	testAdminPAT = "admin-pat-0123456789abcdefghijklmnopqrstuv"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newTestServer starts an emulator with fast bcrypt and an admin PAT.
func newTestServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	if cfg.AdminPassword == "" {
		cfg.AdminPassword = testAdminPW
	}
	if cfg.AdminPAT == "" {
		cfg.AdminPAT = testAdminPAT
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.MinCost
	}
	if cfg.MongoURL == "" && strings.HasPrefix(t.Name(), mongoModePrefix) {
		cfg.MongoURL = mongotest.Start(t) // MongoDB mode (mongo_test.go)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

// client is a tiny REST client for tests.
type client struct {
	t      *testing.T
	base   string
	userID string
	token  string
	ip     string // X-Real-IP
}

func (c *client) as(userID, token string) *client {
	cp := *c
	cp.userID, cp.token = userID, token
	return &cp
}

func (c *client) fromIP(ip string) *client {
	cp := *c
	cp.ip = ip
	return &cp
}

type resp struct {
	status int
	body   map[string]any
	raw    string
	header http.Header
}

func (c *client) do(method, path string, body any) resp {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.userID != "" {
		req.Header.Set("X-User-Id", c.userID)
	}
	if c.token != "" {
		req.Header.Set("X-Auth-Token", c.token)
	}
	if c.ip != "" {
		req.Header.Set("X-Real-IP", c.ip)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	r := resp{status: res.StatusCode, raw: string(data), header: res.Header}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &r.body); err != nil {
			c.t.Fatalf("%s %s: non-JSON body %q", method, path, data)
		}
	}
	return r
}

func (c *client) get(path string) resp { c.t.Helper(); return c.do(http.MethodGet, path, nil) }
func (c *client) post(path string, body any) resp {
	c.t.Helper()
	return c.do(http.MethodPost, path, body)
}

func newClient(t *testing.T, ts *httptest.Server) *client { return &client{t: t, base: ts.URL} }

func adminClient(t *testing.T, s *Server, ts *httptest.Server) *client {
	return newClient(t, ts).as(s.AdminID(), testAdminPAT)
}

// wantStatus fails unless r has the status.
func (r resp) wantStatus(t *testing.T, status int) resp {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.raw)
	}
	return r
}

// wantBody fails unless r's body equals want exactly (JSON semantics).
func (r resp) wantBody(t *testing.T, want string) {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON: %v", err)
	}
	if !reflect.DeepEqual(r.body, w) {
		t.Fatalf("body = %s\nwant   %s", strings.TrimSpace(r.raw), want)
	}
}

// field walks a dotted path through the body.
func (r resp) field(path string) any {
	var cur any = r.body
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func (r resp) str(path string) string {
	s, _ := r.field(path).(string)
	return s
}

// createUser creates a user through REST as admin and returns its _id.
func createUser(t *testing.T, admin *client, username, email, password string) string {
	t.Helper()
	r := admin.post("/api/v1/users.create", map[string]any{
		"username": username, "email": email, "password": password, "name": "Name " + username,
	}).wantStatus(t, http.StatusOK)
	return r.str("user._id")
}

// login logs in with a password and returns (userId, authToken).
func login(t *testing.T, c *client, user, password string) (string, string) {
	t.Helper()
	r := c.post("/api/v1/login", map[string]any{"user": user, "password": password}).wantStatus(t, http.StatusOK)
	return r.str("data.userId"), r.str("data.authToken")
}

var allProfiles = []string{"6.x", "7.x", "8.x"}
