package rocketchat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// Secret values used throughout the tests; none may ever appear in an error
// string, a log record or a URL.
const (
	testToken    = "tok-SECRET-7f3a9cQ2"
	testPassword = "pw-SECRET-91b2xZ"
	testSecret   = "cts-SECRET-44d1Rk"
	testResume   = "resume-SECRET-0c8eLm"
	testNewToken = "minted-SECRET-5a6bVw"
)

var allSecrets = []string{testToken, testPassword, testSecret, testResume}

var admin = Credentials{UserID: "adminId", AuthToken: testToken}

var fixedNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type capturedRequest struct {
	Method, Path, RawQuery string
	Header                 http.Header
	Body                   []byte
}

type testServer struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []capturedRequest
	sleeps []time.Duration
	logs   *syncBuffer
}

func (s *testServer) hits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reqs)
}

func (s *testServer) last(t *testing.T) capturedRequest {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reqs) == 0 {
		t.Fatal("server received no request")
	}
	return s.reqs[len(s.reqs)-1]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newServer starts a server whose handler gets the 1-based hit number, and
// a client for it with a fixed clock, a recording no-op backoff and a debug
// logger whose output is checked for secrets at cleanup.
func newServer(t *testing.T, h func(w http.ResponseWriter, r *http.Request, hit int), opts ...func(*Options)) (*Client, *testServer) {
	t.Helper()
	ts := &testServer{logs: &syncBuffer{}}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body bytes.Buffer
		_, _ = body.ReadFrom(r.Body)
		ts.mu.Lock()
		ts.reqs = append(ts.reqs, capturedRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body.Bytes()})
		n := len(ts.reqs)
		ts.mu.Unlock()
		h(w, r, n)
	}))
	t.Cleanup(ts.Close)
	o := Options{
		BaseURL: ts.URL,
		Logger:  slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, f := range opts {
		f(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	c.now = func() time.Time { return fixedNow }
	c.sleep = func(ctx context.Context, d time.Duration) error {
		ts.mu.Lock()
		ts.sleeps = append(ts.sleeps, d)
		ts.mu.Unlock()
		return ctx.Err()
	}
	t.Cleanup(func() {
		assertNoSecrets(t, "log output", ts.logs.String())
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for _, r := range ts.reqs {
			assertNoSecrets(t, "request URL", r.Path+"?"+r.RawQuery)
		}
	})
	return c, ts
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

// static answers every request with the same status and body.
func static(status int, body string) func(http.ResponseWriter, *http.Request, int) {
	return func(w http.ResponseWriter, _ *http.Request, _ int) { reply(w, status, body) }
}

func assertNoSecrets(t *testing.T, what, s string) {
	t.Helper()
	for _, sec := range append(allSecrets, testNewToken) {
		if strings.Contains(s, sec) {
			t.Errorf("%s contains secret %q: %s", what, sec, s)
		}
	}
}

func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("request body %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want JSON %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("request body = %s, want %s", got, want)
	}
}

func mustError(t *testing.T, err error) *Error {
	t.Helper()
	if err == nil {
		t.Fatal("got nil error, want *Error")
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T %v is not *Error", err, err)
	}
	s := err.Error()
	assertNoSecrets(t, "Error()", s)
	if strings.ContainsAny(s, "\r\n") {
		t.Errorf("Error() is not one line: %q", s)
	}
	return e
}

func checkAuthHeaders(t *testing.T, r capturedRequest) {
	t.Helper()
	if got := r.Header.Get("X-User-Id"); got != admin.UserID {
		t.Errorf("X-User-Id = %q, want %q", got, admin.UserID)
	}
	if got := r.Header.Get("X-Auth-Token"); got != admin.AuthToken {
		t.Errorf("X-Auth-Token header missing or wrong")
	}
}

func checkNoAuthHeaders(t *testing.T, r capturedRequest) {
	t.Helper()
	if r.Header.Get("X-User-Id") != "" || r.Header.Get("X-Auth-Token") != "" {
		t.Errorf("unauthenticated call sent auth headers")
	}
}

func checkJSONPost(t *testing.T, r capturedRequest, path string) {
	t.Helper()
	if r.Method != http.MethodPost || r.Path != path {
		t.Errorf("request = %s %s, want POST %s", r.Method, r.Path, path)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		in       string
		wantErr  bool
		wantPath string
	}{
		{in: "http://127.0.0.1:3000", wantPath: ""},
		{in: "https://chat.example.com/", wantPath: ""},
		{in: "https://example.com/chat/", wantPath: "/chat"},
		{in: " http://rc:3000/a/b ", wantPath: "/a/b"},
		{in: "", wantErr: true},
		{in: "127.0.0.1:3000", wantErr: true},
		{in: "/relative", wantErr: true},
		{in: "ftp://example.com", wantErr: true},
		{in: "http://", wantErr: true},
		{in: "http://user:pw-SECRET-91b2xZ@example.com", wantErr: true},
		{in: "http://example.com/?x=1", wantErr: true},
		{in: "http://example.com/#frag", wantErr: true},
		{in: "http://exa mple.com", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := New(Options{BaseURL: tt.in})
			if tt.wantErr {
				if err == nil {
					t.Fatalf("New(%q) = nil error, want error", tt.in)
				}
				assertNoSecrets(t, "New error", err.Error())
				return
			}
			if err != nil {
				t.Fatalf("New(%q): %v", tt.in, err)
			}
			u := c.BaseURL()
			if u.Path != tt.wantPath {
				t.Errorf("BaseURL().Path = %q, want %q", u.Path, tt.wantPath)
			}
			u.Path = "/mutated"
			if c.BaseURL().Path == "/mutated" {
				t.Error("BaseURL returned the internal URL, not a copy")
			}
			if c.timeout != defaultTimeout {
				t.Errorf("timeout = %v, want %v", c.timeout, defaultTimeout)
			}
		})
	}
}

func TestPathPrefixAndHeaders(t *testing.T) {
	c, ts := newServer(t, static(200, `{"_id":"u1","username":"alice","success":true}`))
	c2, err := New(Options{BaseURL: ts.URL + "/chat/", UserAgent: "rcsso-test/1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Me(context.Background(), admin); err != nil {
		t.Fatal(err)
	}
	r := ts.last(t)
	if r.Path != "/chat/api/v1/me" || r.Method != http.MethodGet {
		t.Errorf("request = %s %s, want GET /chat/api/v1/me", r.Method, r.Path)
	}
	if ua := r.Header.Get("User-Agent"); ua != "rcsso-test/1" {
		t.Errorf("User-Agent = %q", ua)
	}
	if _, err := c.Me(context.Background(), admin); err != nil {
		t.Fatal(err)
	}
	r = ts.last(t)
	if ua := r.Header.Get("User-Agent"); ua != "rcsso" {
		t.Errorf("default User-Agent = %q, want rcsso", ua)
	}
	if r.Header.Get("Accept") != "application/json" {
		t.Errorf("Accept = %q", r.Header.Get("Accept"))
	}
	if r.Header.Get("Content-Type") != "" {
		t.Errorf("GET sent Content-Type %q", r.Header.Get("Content-Type"))
	}
}

func TestInfo(t *testing.T) {
	tests := []struct {
		name, body, want string
		wantErr          bool
	}{
		{name: "6.x", body: `{"version":"6.5.0","success":true}`, want: "6.5.0"},
		{name: "7.x", body: `{"version":"7.13.7","success":true}`, want: "7.13.7"},
		{name: "8.x", body: `{"version":"8.0.0","success":true}`, want: "8.0.0"},
		{name: "3.x admin", body: `{"info":{"version":"3.18.7","commit":{"hash":"x"}},"success":true}`, want: "3.18.7"},
		{name: "version hidden", body: `{"success":true}`, want: ""},
		{name: "not Rocket.Chat", body: `{"name":"something else"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ts := newServer(t, static(200, tt.body))
			got, err := c.Info(context.Background())
			if tt.wantErr {
				e := mustError(t, err)
				if e.Status != 200 || e.Endpoint != "info" {
					t.Errorf("error = %+v", e)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Version != tt.want {
				t.Errorf("Version = %q, want %q", got.Version, tt.want)
			}
			r := ts.last(t)
			if r.Method != http.MethodGet || r.Path != "/api/info" {
				t.Errorf("request = %s %s", r.Method, r.Path)
			}
			checkNoAuthHeaders(t, r)
		})
	}
}

func TestServerInfoMajor(t *testing.T) {
	tests := []struct {
		v      string
		major  int
		secret bool
	}{
		{"3.18.7", 3, false}, {"6.10.10", 6, false}, {"7.13.7", 7, false},
		{"8.0.0", 8, true}, {"8.0.0-rc.1", 8, true}, {"v9", 9, true}, {"", 0, false}, {"dev", 0, false},
	}
	for _, tt := range tests {
		s := ServerInfo{Version: tt.v}
		if got := s.Major(); got != tt.major {
			t.Errorf("Major(%q) = %d, want %d", tt.v, got, tt.major)
		}
		if got := s.RequiresTokenSecret(); got != tt.secret {
			t.Errorf("RequiresTokenSecret(%q) = %v, want %v", tt.v, got, tt.secret)
		}
	}
}

const meAlice = `"me":{"_id":"u1","name":"Alice","emails":[{"address":"alice@example.com","verified":true}],"status":"offline","username":"alice","utcOffset":0,"active":true,"roles":["user"],"settings":{"preferences":{}},"avatarUrl":"http://rc/avatar/alice"}`

func TestLogin(t *testing.T) {
	tests := []struct {
		name     string
		resume   bool
		body     string
		wantBody string
	}{
		{name: "password 6.x", body: `{"status":"success","data":{"userId":"u1","authToken":"` + testNewToken + `",` + meAlice + `}}`,
			wantBody: `{"user":"alice@example.com","password":"` + testPassword + `"}`},
		{name: "password 7.x", body: `{"status":"success","success":true,"data":{"userId":"u1","authToken":"` + testNewToken + `",` + meAlice + `}}`,
			wantBody: `{"user":"alice@example.com","password":"` + testPassword + `"}`},
		{name: "password 8.x", body: `{"success":true,"status":"success","data":{"userId":"u1","authToken":"` + testNewToken + `",` + meAlice + `}}`,
			wantBody: `{"user":"alice@example.com","password":"` + testPassword + `"}`},
		{name: "resume 6.x", resume: true, body: `{"status":"success","data":{"userId":"u1","authToken":"` + testNewToken + `",` + meAlice + `}}`,
			wantBody: `{"resume":"` + testResume + `"}`},
		{name: "resume 7.x", resume: true, body: `{"status":"success","success":true,"data":{"userId":"u1","authToken":"` + testNewToken + `",` + meAlice + `}}`,
			wantBody: `{"resume":"` + testResume + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ts := newServer(t, static(200, tt.body))
			var res LoginResult
			var err error
			if tt.resume {
				res, err = c.LoginResume(context.Background(), testResume)
			} else {
				res, err = c.LoginPassword(context.Background(), "alice@example.com", testPassword)
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.UserID != "u1" || res.AuthToken != testNewToken {
				t.Errorf("result = %s", res)
			}
			if res.Me == nil || res.Me.Username != "alice" || !res.Me.Active || len(res.Me.Emails) != 1 ||
				res.Me.Emails[0].Address != "alice@example.com" || !res.Me.Emails[0].Verified {
				t.Errorf("Me = %#v", res.Me)
			}
			if cr := res.Credentials(); cr.UserID != "u1" || cr.AuthToken != testNewToken {
				t.Errorf("Credentials() = %s", cr)
			}
			r := ts.last(t)
			checkJSONPost(t, r, "/api/v1/login")
			checkNoAuthHeaders(t, r)
			jsonEqual(t, r.Body, tt.wantBody)
		})
	}
	t.Run("missing token in response", func(t *testing.T) {
		c, _ := newServer(t, static(200, `{"status":"success","data":{"userId":"u1"}}`))
		_, err := c.LoginPassword(context.Background(), "alice", testPassword)
		if e := mustError(t, err); e.Status != 200 {
			t.Errorf("Status = %d", e.Status)
		}
	})
}

func TestLoginErrors(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		header        map[string]string
		body          string
		wantType      string
		wantMsg       string
		wantUnauth    bool
		wantRateLimit time.Duration // >0: IsRateLimited with this wait
	}{
		{name: "6.x wrong password", status: 401, body: `{"status":"error","error":"Unauthorized","message":"Unauthorized"}`,
			wantType: "Unauthorized", wantMsg: "Unauthorized", wantUnauth: true},
		{name: "7.x not activated", status: 401, body: `{"status":"error","error":"error-user-is-not-activated","details":{},"message":"User is not activated"}`,
			wantType: "error-user-is-not-activated", wantMsg: "User is not activated", wantUnauth: true},
		{name: "8.x not activated", status: 401, body: `{"success":false,"error":"error-user-is-not-activated"}`,
			wantType: "error-user-is-not-activated", wantMsg: "", wantUnauth: true},
		{name: "blocked", status: 401, body: `{"status":"error","error":"error-login-blocked-for-user","message":"Login has been temporarily blocked"}`,
			wantType: "error-login-blocked-for-user", wantMsg: "Login has been temporarily blocked", wantUnauth: true},
		{name: "totp", status: 401, body: `{"status":"error","error":"totp-required","details":{"method":"email","codeGenerated":true},"message":"TOTP Required"}`,
			wantType: "totp-required", wantMsg: "TOTP Required", wantUnauth: true},
		{name: "resume logged out (401, Meteor 403)", status: 401, body: `{"status":"error","error":403,"message":"You've been logged out by the server. Please log in again."}`,
			wantMsg: "You've been logged out by the server. Please log in again.", wantUnauth: true},
		{name: "resume logged out (HTTP 403)", status: 403, body: `{"status":"error","error":403,"reason":"You've been logged out by the server. Please log in again.","message":"You've been logged out by the server. Please log in again. [403]"}`,
			wantMsg: "You've been logged out by the server. Please log in again.", wantUnauth: true},
		{name: "resume expired 8.x", status: 401, body: `{"success":false,"error":"Your session has expired. Please log in again."}`,
			wantMsg: "Your session has expired. Please log in again.", wantUnauth: true},
		{name: "rate limited", status: 429, body: `{"success":false,"error":"Error, too many requests. Please slow down. You must wait 42 seconds before trying this endpoint again. [error-too-many-requests]"}`,
			wantType: "error-too-many-requests", wantMsg: "Error, too many requests. Please slow down. You must wait 42 seconds before trying this endpoint again.",
			wantRateLimit: 42 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ts := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				reply(w, tt.status, tt.body)
			})
			_, err := c.LoginResume(context.Background(), testResume)
			e := mustError(t, err)
			if e.Status != tt.status || e.Endpoint != "login" || e.ErrorType != tt.wantType || e.Message != tt.wantMsg {
				t.Errorf("got {Status:%d Endpoint:%q ErrorType:%q Message:%q}, want {%d login %q %q}",
					e.Status, e.Endpoint, e.ErrorType, e.Message, tt.status, tt.wantType, tt.wantMsg)
			}
			if got := IsUnauthorized(err); got != tt.wantUnauth {
				t.Errorf("IsUnauthorized = %v, want %v", got, tt.wantUnauth)
			}
			d, limited := IsRateLimited(err)
			if limited != (tt.wantRateLimit > 0) || d != tt.wantRateLimit {
				t.Errorf("IsRateLimited = %v, %v; want %v", d, limited, tt.wantRateLimit)
			}
			if IsUnavailable(err) {
				t.Error("IsUnavailable = true for a /login answer")
			}
			if ts.hits() != 1 {
				t.Errorf("hits = %d, want 1 (POST never retried)", ts.hits())
			}
		})
	}
}

func TestMe(t *testing.T) {
	tests := []struct{ name, body string }{
		{"6.x", `{"_id":"u1","username":"alice","name":"Alice","emails":[{"address":"alice@example.com","verified":false}],"status":"online","active":true,"roles":["user","bot"],"settings":{"preferences":{"language":"en"}},"avatarUrl":"http://rc/avatar/alice","services":{"password":{"exists":true}},"email":"alice@example.com","success":true}`},
		{"7.x", `{"_id":"u1","type":"user","username":"alice","name":"Alice","emails":[{"address":"alice@example.com","verified":false}],"active":true,"roles":["user","bot"],"customFields":{"ext":"42","n":7},"success":true}`},
		{"8.x", `{"success":true,"_id":"u1","type":"user","username":"alice","name":"Alice","emails":[{"address":"alice@example.com","verified":false}],"active":true,"roles":["user","bot"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ts := newServer(t, static(200, tt.body))
			u, err := c.Me(context.Background(), admin)
			if err != nil {
				t.Fatal(err)
			}
			if u.ID != "u1" || u.Username != "alice" || u.Name != "Alice" || !u.Active ||
				!reflect.DeepEqual(u.Roles, []string{"user", "bot"}) || len(u.Emails) != 1 || u.Emails[0].Address != "alice@example.com" {
				t.Errorf("user = %+v", u)
			}
			r := ts.last(t)
			if r.Method != http.MethodGet || r.Path != "/api/v1/me" {
				t.Errorf("request = %s %s", r.Method, r.Path)
			}
			checkAuthHeaders(t, r)
		})
	}
	t.Run("no _id", func(t *testing.T) {
		c, _ := newServer(t, static(200, `{"success":true}`))
		_, err := c.Me(context.Background(), admin)
		mustError(t, err)
	})
}

func TestLogout(t *testing.T) {
	for _, body := range []string{
		`{"status":"success","data":{"message":"You've been logged out!"}}`,
		`{"status":"success","data":{"message":"You've been logged out!"},"success":true}`,
	} {
		c, ts := newServer(t, static(200, body))
		if err := c.Logout(context.Background(), admin); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		r := ts.last(t)
		if r.Method != http.MethodPost || r.Path != "/api/v1/logout" || len(r.Body) != 0 {
			t.Errorf("request = %s %s body %q", r.Method, r.Path, r.Body)
		}
		checkAuthHeaders(t, r)
	}
}

func TestUserInfo(t *testing.T) {
	const user = `{"user":{"_id":"u2","username":"bob","name":"Bob","emails":[{"address":"bob@example.com","verified":true}],"type":"user","status":"offline","active":false,"roles":["user"],"utcOffset":0},"success":true}`
	tests := []struct {
		name      string
		call      func(*Client) (User, error)
		wantQuery string
	}{
		{"by username", func(c *Client) (User, error) {
			return c.UserInfoByUsername(context.Background(), admin, "bob.o'neil+x")
		}, "username=bob.o%27neil%2Bx"},
		{"by id", func(c *Client) (User, error) { return c.UserInfoByID(context.Background(), admin, "u2") }, "userId=u2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ts := newServer(t, static(200, user))
			u, err := tt.call(c)
			if err != nil {
				t.Fatal(err)
			}
			if u.ID != "u2" || u.Username != "bob" || u.Active || u.Type != "user" || !u.Emails[0].Verified {
				t.Errorf("user = %+v", u)
			}
			r := ts.last(t)
			if r.Method != http.MethodGet || r.Path != "/api/v1/users.info" || r.RawQuery != tt.wantQuery {
				t.Errorf("request = %s %s?%s, want query %s", r.Method, r.Path, r.RawQuery, tt.wantQuery)
			}
			checkAuthHeaders(t, r)
		})
	}
}

func TestCreateUser(t *testing.T) {
	active := true
	req := CreateUserRequest{
		Email: "carol@example.com", Name: "Carol", Password: testPassword, Username: "carol",
		Active: &active, Roles: []string{"user"}, Verified: true,
		CustomFields: map[string]string{"externalId": "ext-1"},
	}
	wantBody := `{"email":"carol@example.com","name":"Carol","password":"` + testPassword + `","username":"carol",
		"active":true,"roles":["user"],"joinDefaultChannels":false,"requirePasswordChange":false,
		"sendWelcomeEmail":false,"verified":true,"customFields":{"externalId":"ext-1"}}`
	const userJSON = `{"_id":"u3","createdAt":"2025-01-01T00:00:00.000Z","username":"carol","emails":[{"address":"carol@example.com","verified":true}],"type":"user","status":"offline","active":true,"roles":["user"],"name":"Carol","settings":{},"_updatedAt":"2025-01-01T00:00:00.000Z","customFields":{"externalId":"ext-1"}}`
	for _, body := range []string{
		`{"user":` + userJSON + `,"success":true}`, // 6.x–8.x share this shape
		`{"success":true,"user":` + userJSON + `}`,
	} {
		c, ts := newServer(t, static(200, body))
		u, err := c.CreateUser(context.Background(), admin, req)
		if err != nil {
			t.Fatal(err)
		}
		if u.ID != "u3" || u.Username != "carol" || u.Name != "Carol" || !u.Active || u.CustomFields["externalId"] != "ext-1" {
			t.Errorf("user = %+v", u)
		}
		r := ts.last(t)
		checkJSONPost(t, r, "/api/v1/users.create")
		checkAuthHeaders(t, r)
		jsonEqual(t, r.Body, wantBody)
	}
}

func TestUpdateUser(t *testing.T) {
	name := "Dave D."
	verified := false
	c, ts := newServer(t, static(200, `{"user":{"_id":"u4","username":"dave","name":"Dave D.","active":true},"success":true}`))
	u, err := c.UpdateUser(context.Background(), admin, "u4", UpdateUserData{Name: &name, Verified: &verified})
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != "u4" || u.Name != "Dave D." {
		t.Errorf("user = %+v", u)
	}
	r := ts.last(t)
	checkJSONPost(t, r, "/api/v1/users.update")
	checkAuthHeaders(t, r)
	jsonEqual(t, r.Body, `{"userId":"u4","data":{"name":"Dave D.","verified":false}}`)
}

func TestCreateToken(t *testing.T) {
	tests := []struct {
		name, secret, resp, wantBody string
		wantErr                      bool
	}{
		{name: "8.x with secret", secret: testSecret,
			resp:     `{"data":{"userId":"u5","authToken":"` + testNewToken + `"},"success":true}`,
			wantBody: `{"userId":"u5","secret":"` + testSecret + `"}`},
		{name: "7.x without secret", secret: "",
			resp:     `{"data":{"userId":"u5","authToken":"` + testNewToken + `"},"success":true}`,
			wantBody: `{"userId":"u5"}`},
		{name: "other user in response", secret: testSecret,
			resp:     `{"data":{"userId":"adminId","authToken":"` + testNewToken + `"},"success":true}`,
			wantBody: `{"userId":"u5","secret":"` + testSecret + `"}`, wantErr: true},
		{name: "no token", secret: "", resp: `{"data":{"userId":"u5"},"success":true}`,
			wantBody: `{"userId":"u5"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ts := newServer(t, static(200, tt.resp))
			cr, err := c.CreateToken(context.Background(), admin, "u5", tt.secret)
			r := ts.last(t)
			checkJSONPost(t, r, "/api/v1/users.createToken")
			checkAuthHeaders(t, r)
			jsonEqual(t, r.Body, tt.wantBody)
			if tt.wantErr {
				mustError(t, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cr.UserID != "u5" || cr.AuthToken != testNewToken {
				t.Errorf("credentials = %s", cr)
			}
		})
	}
}

func TestListUsers(t *testing.T) {
	tests := []struct {
		name          string
		offset, count int
		body          string
		wantQuery     string
		wantN, wantT  int
	}{
		{name: "page", offset: 10, count: 2, wantQuery: "count=2&offset=10",
			body:  `{"users":[{"_id":"a","username":"a","active":true,"roles":["user"]},{"_id":"b","username":"b","active":false,"nameInsensitive":"b"}],"count":2,"offset":10,"total":57,"success":true}`,
			wantN: 2, wantT: 57},
		{name: "server default count", offset: 0, count: 0, wantQuery: "offset=0",
			body: `{"users":[],"count":0,"offset":0,"total":0,"success":true}`, wantN: 0, wantT: 0},
		{name: "no total", offset: 5, count: 1, wantQuery: "count=1&offset=5",
			body: `{"users":[{"_id":"a","username":"a"}],"success":true}`, wantN: 1, wantT: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ts := newServer(t, static(200, tt.body))
			users, total, err := c.ListUsers(context.Background(), admin, tt.offset, tt.count)
			if err != nil {
				t.Fatal(err)
			}
			if len(users) != tt.wantN || total != tt.wantT || users == nil {
				t.Errorf("got %d users (nil=%v), total %d; want %d, %d", len(users), users == nil, total, tt.wantN, tt.wantT)
			}
			r := ts.last(t)
			if r.Method != http.MethodGet || r.Path != "/api/v1/users.list" || r.RawQuery != tt.wantQuery {
				t.Errorf("request = %s %s?%s, want ?%s", r.Method, r.Path, r.RawQuery, tt.wantQuery)
			}
			checkAuthHeaders(t, r)
		})
	}
}

// errorCase drives one endpoint against a canned failure.
type errorCase struct {
	name     string
	endpoint string // which call to make
	status   int
	header   map[string]string
	ctype    string // Content-Type; "" → application/json
	body     string

	wantStatus   int // 0 → status
	wantType     string
	wantMsg      string // exact, unless wantMsgSub
	wantMsgSub   string // substring check instead
	wantString   string // exact Error(), optional
	unauth       bool
	notFound     bool
	fieldUnavail bool
	unavailable  bool
	tokensBug    bool
	rateLimited  bool
	retryAfter   time.Duration
	forbidden    bool
	wantCode     string // Error.Code (9.0 error-forbidden)
	wantPerm     string // MissingPermission
}

func callEndpoint(c *Client, endpoint string) error {
	ctx := context.Background()
	var err error
	switch endpoint {
	case "me":
		_, err = c.Me(ctx, admin)
	case "users.info":
		_, err = c.UserInfoByUsername(ctx, admin, "bob")
	case "users.create":
		_, err = c.CreateUser(ctx, admin, CreateUserRequest{Email: "alice@example.com", Name: "Alice", Password: testPassword, Username: "alice"})
	case "users.update":
		pw := testPassword
		_, err = c.UpdateUser(ctx, admin, "u1", UpdateUserData{Password: &pw})
	case "users.createToken":
		_, err = c.CreateToken(ctx, admin, "u1", testSecret)
	case "users.list":
		_, _, err = c.ListUsers(ctx, admin, 0, 10)
	case "users.setAvatar":
		err = c.SetAvatar(ctx, admin, "u1", "https://example.com/a.png")
	case "logout":
		err = c.Logout(ctx, admin)
	case "login":
		_, err = c.LoginPassword(ctx, "alice", testPassword)
	case "info":
		_, err = c.Info(ctx)
	default:
		panic("unknown endpoint " + endpoint)
	}
	return err
}

func TestErrorMapping(t *testing.T) {
	const loggedIn = "You must be logged in to do this."
	resetMs := strconv.FormatInt(fixedNow.Add(30500*time.Millisecond).UnixMilli(), 10)
	tests := []errorCase{
		{name: "401 3.x-6.x", endpoint: "me", status: 401, body: `{"status":"error","message":"` + loggedIn + `"}`,
			wantMsg: loggedIn, unauth: true, wantString: "rocketchat: me: 401: " + loggedIn},
		{name: "401 7.x", endpoint: "me", status: 401,
			body:    `{"success":false,"error":"` + loggedIn + `","status":"error","message":"` + loggedIn + `"}`,
			wantMsg: loggedIn, unauth: true},
		{name: "401 8.x", endpoint: "users.info", status: 401, body: `{"success":false,"error":"` + loggedIn + `"}`,
			wantMsg: loggedIn, unauth: true},
		{name: "403 handler unauthorized", endpoint: "users.create", status: 403, body: `{"success":false,"error":"unauthorized"}`,
			wantMsg: "unauthorized", forbidden: true, wantPerm: "create-user"},
		{name: "403 route permission", endpoint: "users.create", status: 403,
			body:     `{"success":false,"error":"User does not have the permissions required for this action [error-unauthorized]"}`,
			wantType: "error-unauthorized", wantMsg: "User does not have the permissions required for this action", forbidden: true, wantPerm: "create-user"},
		{name: "403 8.x forbidden", endpoint: "users.list", status: 403, body: `{"success":false,"error":"forbidden"}`, wantMsg: "forbidden",
			forbidden: true, wantPerm: "view-d-room"},
		{name: "403 9.0 error-forbidden (#43214)", endpoint: "users.setAvatar", status: 403,
			body:     `{"success":false,"error":"Change avatar is not allowed [error-not-allowed]","errorType":"error-forbidden"}`,
			wantType: "error-forbidden", wantCode: "error-not-allowed", wantMsg: "Change avatar is not allowed", forbidden: true,
			wantPerm: "edit-other-user-avatar", wantString: "rocketchat: users.setAvatar: 403 error-forbidden (error-not-allowed): Change avatar is not allowed"},
		{name: "403 9.0 error-forbidden on users.update active", endpoint: "users.update", status: 403,
			body:     `{"success":false,"error":"Not allowed [error-not-allowed]","errorType":"error-forbidden"}`,
			wantType: "error-forbidden", wantCode: "error-not-allowed", wantMsg: "Not allowed", forbidden: true, wantPerm: "edit-other-user-active-status"},
		{name: "400 8.x error-not-allowed", endpoint: "users.setAvatar", status: 400,
			body:     `{"success":false,"error":"Change avatar is not allowed [error-not-allowed]","errorType":"error-not-allowed","details":{"method":"users.setAvatar"}}`,
			wantType: "error-not-allowed", wantMsg: "Change avatar is not allowed", forbidden: true, wantPerm: "edit-other-user-avatar"},
		{name: "400 adding user not allowed (bot role)", endpoint: "users.create", status: 400,
			body:     `{"success":false,"error":"Adding user is not allowed [error-action-not-allowed]","errorType":"error-action-not-allowed","details":{"method":"insertOrUpdateUser","action":"Adding_user"}}`,
			wantType: "error-action-not-allowed", wantMsg: "Adding user is not allowed", forbidden: true, wantPerm: "create-user"},
		{name: "400 assign roles not allowed", endpoint: "users.update", status: 400,
			body:     `{"success":false,"error":"Assign roles is not allowed [error-action-not-allowed]","errorType":"error-action-not-allowed"}`,
			wantType: "error-action-not-allowed", wantMsg: "Assign roles is not allowed", forbidden: true, wantPerm: "assign-roles"},
		{name: "400 invalid role is not a refusal", endpoint: "users.create", status: 400,
			body:     `{"success":false,"error":"The field Roles consist invalid role id [error-action-not-allowed]","errorType":"error-action-not-allowed"}`,
			wantType: "error-action-not-allowed", wantMsg: "The field Roles consist invalid role id"},
		{name: "400 field unavailable", endpoint: "users.create", status: 400,
			body:     `{"success":false,"error":"alice is already in use :( [error-field-unavailable]","errorType":"error-field-unavailable","details":{"method":"insertOrUpdateUser","field":"Username"}}`,
			wantType: "error-field-unavailable", wantMsg: "alice is already in use :(", fieldUnavail: true,
			wantString: "rocketchat: users.create: 400 error-field-unavailable: alice is already in use :("},
		{name: "400 ajv invalid-params", endpoint: "users.update", status: 400,
			body:     `{"success":false,"error":"must NOT have additional properties [invalid-params]","errorType":"invalid-params"}`,
			wantType: "invalid-params", wantMsg: "must NOT have additional properties"},
		{name: "400 3.x Match error", endpoint: "users.create", status: 400,
			body:    `{"success":false,"error":"Match error: Expected string, got undefined in field email"}`,
			wantMsg: "Match error: Expected string, got undefined in field email"},
		{name: "400 totp required", endpoint: "users.update", status: 400,
			body:     `{"success":false,"error":"TOTP Required [totp-required]","errorType":"totp-required","details":{"method":"password","codeGenerated":false,"availableMethods":[]}}`,
			wantType: "totp-required", wantMsg: "TOTP Required"},
		{name: "400 last owner no reason", endpoint: "users.update", status: 400,
			body: `{"success":false,"error":"[user-last-owner]","errorType":"user-last-owner"}`, wantType: "user-last-owner", wantMsg: "",
			wantString: "rocketchat: users.update: 400 user-last-owner"},
		{name: "400 not found 6.x", endpoint: "users.info", status: 400, body: `{"success":false,"error":"User not found."}`,
			wantMsg: "User not found.", notFound: true},
		{name: "400 not found 3.x", endpoint: "users.info", status: 400,
			body:    `{"success":false,"error":"Failed to get the user data for the userId of \"adminId\"."}`,
			wantMsg: `Failed to get the user data for the userId of "adminId".`, notFound: true},
		{name: "400 invalid user", endpoint: "users.update", status: 400,
			body:     `{"success":false,"error":"The required \"userId\" or \"username\" param provided does not match any users [error-invalid-user]","errorType":"error-invalid-user"}`,
			wantType: "error-invalid-user", wantMsg: `The required "userId" or "username" param provided does not match any users`, notFound: true},
		{name: "400 createToken not authorized", endpoint: "users.createToken", status: 400,
			body:     `{"success":false,"error":"Not authorized [error-not-authorized]","errorType":"error-not-authorized"}`,
			wantType: "error-not-authorized", wantMsg: "Not authorized", forbidden: true, wantPerm: "user-generate-access-token"},
		{name: "400 7.13 tokens bug", endpoint: "users.createToken", status: 400,
			body:    `{"success":false,"error":"Cannot read properties of undefined (reading 'tokens')"}`,
			wantMsg: "Cannot read properties of undefined (reading 'tokens')", tokensBug: true},
		{name: "400 nested Meteor error", endpoint: "users.create", status: 400,
			body:     `{"success":false,"error":{"isClientSafe":true,"error":"error-invalid-email","reason":"Invalid email x","message":"Invalid email x [error-invalid-email]","errorType":"Meteor.Error"}}`,
			wantType: "error-invalid-email", wantMsg: "Invalid email x"},
		{name: "429 X-RateLimit-Reset", endpoint: "users.info", status: 429,
			header:   map[string]string{"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": resetMs},
			body:     `{"success":false,"error":"Error, too many requests. Please slow down. You must wait 60 seconds before trying this endpoint again. [error-too-many-requests]"}`,
			wantType: "error-too-many-requests", wantMsgSub: "too many requests", rateLimited: true, retryAfter: 30500 * time.Millisecond},
		{name: "429 text only", endpoint: "users.create", status: 429,
			body:     `{"success":false,"error":"Error, too many requests. Please slow down. You must wait 17 seconds before trying this endpoint again. [error-too-many-requests]"}`,
			wantType: "error-too-many-requests", wantMsgSub: "wait 17 seconds", rateLimited: true, retryAfter: 17 * time.Second},
		{name: "429 reset in the past falls back to text", endpoint: "me", status: 429,
			header:   map[string]string{"X-RateLimit-Reset": strconv.FormatInt(fixedNow.Add(-time.Second).UnixMilli(), 10)},
			body:     `{"success":false,"error":"Error, too many requests. Please slow down. You must wait 3 seconds before trying this endpoint again. [error-too-many-requests]"}`,
			wantType: "error-too-many-requests", wantMsgSub: "wait 3 seconds", rateLimited: true, retryAfter: 3 * time.Second},
		{name: "429 plain text body", endpoint: "users.create", status: 429, ctype: "text/plain", body: "Too Many Requests",
			wantMsgSub: "Too Many Requests", rateLimited: true},
		{name: "200 success false", endpoint: "users.create", status: 200, body: `{"success":false,"error":"Something odd [error-odd]","errorType":"error-odd"}`,
			wantType: "error-odd", wantMsg: "Something odd"},
		{name: "200 status error", endpoint: "logout", status: 200, body: `{"status":"error","message":"You must be logged in to do this."}`,
			wantMsg: loggedIn},
		{name: "200 HTML (wrong base URL)", endpoint: "info", status: 200, ctype: "text/html; charset=utf-8",
			body: "<!DOCTYPE html><html><head><title>Example Domain</title></head><body>hi</body></html>", wantMsgSub: "non-JSON"},
		{name: "200 not an object", endpoint: "me", status: 200, body: `[1,2]`, wantMsgSub: "non-JSON"},
		{name: "200 empty", endpoint: "users.create", status: 200, body: ``, wantMsg: "empty response body"},
		{name: "200 wrong types", endpoint: "me", status: 200, body: `{"_id":5,"success":true}`, wantMsg: "decode response"},
		{name: "502 HTML from proxy", endpoint: "users.create", status: 502, ctype: "text/html",
			body:       "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
			wantMsgSub: "502 Bad Gateway", unavailable: true},
		{name: "502 empty body", endpoint: "logout", status: 502, ctype: "text/plain", body: "",
			wantMsg: "", unavailable: true, wantString: "rocketchat: logout: 502 Bad Gateway"},
		{name: "500 JSON", endpoint: "users.createToken", status: 500, body: `{"success":false,"error":"Internal server error"}`,
			wantMsg: "Internal server error", unavailable: true},
		{name: "404 from proxy is not not-found", endpoint: "users.info", status: 404, ctype: "text/plain", body: "404 page not found",
			wantMsgSub: "404 page not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				ct := tt.ctype
				if ct == "" {
					ct = "application/json"
				}
				w.Header().Set("Content-Type", ct)
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte(tt.body))
			})
			checkErrorCase(t, tt, callEndpoint(c, tt.endpoint))
		})
	}
}

func checkErrorCase(t *testing.T, tt errorCase, err error) {
	t.Helper()
	e := mustError(t, err)
	wantStatus := tt.wantStatus
	if wantStatus == 0 {
		wantStatus = tt.status
	}
	if e.Status != wantStatus || e.Endpoint != tt.endpoint || e.ErrorType != tt.wantType {
		t.Errorf("got {Status:%d Endpoint:%q ErrorType:%q}, want {%d %q %q}", e.Status, e.Endpoint, e.ErrorType, wantStatus, tt.endpoint, tt.wantType)
	}
	if tt.wantMsgSub != "" {
		if !strings.Contains(e.Message, tt.wantMsgSub) {
			t.Errorf("Message = %q, want it to contain %q", e.Message, tt.wantMsgSub)
		}
	} else if e.Message != tt.wantMsg {
		t.Errorf("Message = %q, want %q", e.Message, tt.wantMsg)
	}
	if tt.wantString != "" && err.Error() != tt.wantString {
		t.Errorf("Error() = %q, want %q", err.Error(), tt.wantString)
	}
	checks := []struct {
		name      string
		got, want bool
	}{
		{"IsUnauthorized", IsUnauthorized(err), tt.unauth},
		{"IsNotFound", IsNotFound(err), tt.notFound},
		{"IsFieldUnavailable", IsFieldUnavailable(err), tt.fieldUnavail},
		{"IsUnavailable", IsUnavailable(err), tt.unavailable},
		{"IsTokensBug", IsTokensBug(err), tt.tokensBug},
		{"IsForbidden", IsForbidden(err), tt.forbidden},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v (err: %v)", ch.name, ch.got, ch.want, err)
		}
	}
	if e.Code != tt.wantCode || MissingPermission(err) != tt.wantPerm {
		t.Errorf("Code = %q, MissingPermission = %q; want %q, %q", e.Code, MissingPermission(err), tt.wantCode, tt.wantPerm)
	}
	d, limited := IsRateLimited(err)
	if limited != tt.rateLimited || d != tt.retryAfter {
		t.Errorf("IsRateLimited = %v, %v; want %v, %v", d, limited, tt.retryAfter, tt.rateLimited)
	}
	if tt.retryAfter > 0 && !strings.Contains(err.Error(), "retry after") {
		t.Errorf("Error() %q does not mention the retry delay", err.Error())
	}
}

func TestPredicatesOnForeignErrors(t *testing.T) {
	for _, err := range []error{nil, errors.New("x"), context.DeadlineExceeded, (*Error)(nil)} {
		if IsUnauthorized(err) || IsNotFound(err) || IsFieldUnavailable(err) || IsUnavailable(err) || IsTokensBug(err) || IsForbidden(err) || MissingPermission(err) != "" {
			t.Errorf("predicate true for %v", err)
		}
		if _, ok := IsRateLimited(err); ok {
			t.Errorf("IsRateLimited true for %v", err)
		}
	}
	wrapped := fmt.Errorf("mint: %w", &Error{Endpoint: "me", Status: 401})
	if !IsUnauthorized(wrapped) {
		t.Error("IsUnauthorized does not see through wrapping")
	}
	if !IsUnavailable(&Error{Endpoint: "me", Err: context.DeadlineExceeded}) {
		t.Error("hand-built timeout Error is not IsUnavailable")
	}
}

// blockUntilDone is a handler that never answers: it returns when the
// request context ends (client gave up).
func blockUntilDone(started chan<- struct{}) func(http.ResponseWriter, *http.Request, int) {
	return func(_ http.ResponseWriter, r *http.Request, _ int) {
		if started != nil {
			select {
			case started <- struct{}{}:
			default:
			}
		}
		<-r.Context().Done()
	}
}

func TestTimeout(t *testing.T) {
	tests := []struct {
		name     string
		timeout  time.Duration
		ctx      func() (context.Context, context.CancelFunc)
		endpoint string
	}{
		{"option timeout GET", 50 * time.Millisecond, func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, "me"},
		{"option timeout POST", 50 * time.Millisecond, func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, "users.createToken"},
		{"earlier context deadline wins", time.Hour, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 50*time.Millisecond)
		}, "users.info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ts := newServer(t, blockUntilDone(nil), func(o *Options) { o.Timeout = tt.timeout })
			ctx, cancel := tt.ctx()
			defer cancel()
			var err error
			switch tt.endpoint {
			case "me":
				_, err = c.Me(ctx, admin)
			case "users.info":
				_, err = c.UserInfoByID(ctx, admin, "u1")
			case "users.createToken":
				_, err = c.CreateToken(ctx, admin, "u1", testSecret)
			}
			e := mustError(t, err)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("errors.Is(err, context.DeadlineExceeded) = false for %v", err)
			}
			if e.Status != 0 || e.Endpoint != tt.endpoint || !IsUnavailable(err) {
				t.Errorf("got %+v, IsUnavailable=%v", e, IsUnavailable(err))
			}
			if !strings.Contains(err.Error(), "timed out") {
				t.Errorf("Error() = %q, want it to say timed out", err.Error())
			}
			if ts.hits() != 1 {
				t.Errorf("hits = %d, want 1 (no retry once the deadline passed)", ts.hits())
			}
		})
	}
}

func TestHTTPClientTimeoutIsDeadlineExceeded(t *testing.T) {
	_, ts := newServer(t, blockUntilDone(nil))
	c, err := New(Options{BaseURL: ts.URL, HTTPClient: &http.Client{Timeout: 30 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	c.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	err = c.Logout(context.Background(), admin)
	if !errors.Is(err, context.DeadlineExceeded) || !IsUnavailable(err) {
		t.Errorf("err = %v; DeadlineExceeded=%v IsUnavailable=%v", err, errors.Is(err, context.DeadlineExceeded), IsUnavailable(err))
	}
}

func TestCallerCancel(t *testing.T) {
	started := make(chan struct{}, 1)
	c, ts := newServer(t, blockUntilDone(started))
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	_, err := c.Me(ctx, admin)
	e := mustError(t, err)
	if !errors.Is(err, context.Canceled) || e.Status != 0 {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if IsUnavailable(err) {
		t.Error("a caller cancellation is not IsUnavailable")
	}
	if ts.hits() != 1 {
		t.Errorf("hits = %d, want 1", ts.hits())
	}
}

func TestRetry(t *testing.T) {
	const okMe = `{"_id":"u1","username":"alice","success":true}`
	const okToken = `{"data":{"userId":"u1","authToken":"` + testNewToken + `"},"success":true}`
	tests := []struct {
		name      string
		endpoint  string
		statuses  []int // per hit; the last repeats
		okBody    string
		wantHits  int
		wantErr   bool
		wantSleep int
	}{
		{name: "GET 503 twice then ok", endpoint: "me", statuses: []int{503, 503, 200}, okBody: okMe, wantHits: 3, wantSleep: 2},
		{name: "GET 502 then ok", endpoint: "users.list", statuses: []int{502, 200}, okBody: `{"users":[],"total":0,"success":true}`, wantHits: 2, wantSleep: 1},
		{name: "GET 504 forever", endpoint: "users.info", statuses: []int{504}, wantHits: 3, wantErr: true, wantSleep: 2},
		{name: "GET info 503 forever", endpoint: "info", statuses: []int{503}, wantHits: 3, wantErr: true, wantSleep: 2},
		{name: "GET 500 not retried", endpoint: "me", statuses: []int{500}, wantHits: 1, wantErr: true},
		{name: "GET 429 not retried", endpoint: "me", statuses: []int{429}, wantHits: 1, wantErr: true},
		{name: "GET 401 not retried", endpoint: "me", statuses: []int{401}, wantHits: 1, wantErr: true},
		{name: "POST createToken 503 not retried", endpoint: "users.createToken", statuses: []int{503, 200}, okBody: okToken, wantHits: 1, wantErr: true},
		{name: "POST users.create 502 not retried", endpoint: "users.create", statuses: []int{502, 200}, wantHits: 1, wantErr: true},
		{name: "POST login 503 not retried", endpoint: "login", statuses: []int{503, 200}, wantHits: 1, wantErr: true},
		{name: "POST logout 504 not retried", endpoint: "logout", statuses: []int{504, 200}, wantHits: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ts := newServer(t, func(w http.ResponseWriter, _ *http.Request, hit int) {
				st := tt.statuses[min(hit, len(tt.statuses))-1]
				if st == 200 {
					reply(w, 200, tt.okBody)
					return
				}
				reply(w, st, `{"success":false,"error":"nope"}`)
			})
			err := callEndpoint(c, tt.endpoint)
			if tt.wantErr {
				mustError(t, err)
			} else if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if ts.hits() != tt.wantHits {
				t.Errorf("hits = %d, want %d", ts.hits(), tt.wantHits)
			}
			ts.mu.Lock()
			sleeps := append([]time.Duration(nil), ts.sleeps...)
			ts.mu.Unlock()
			if len(sleeps) != tt.wantSleep {
				t.Errorf("backoff sleeps = %v, want %d", sleeps, tt.wantSleep)
			}
			for i, d := range sleeps {
				lo, hi := (retryBaseDelay<<i)/2, retryBaseDelay<<i
				if d < lo || d >= hi {
					t.Errorf("sleep %d = %v, want in [%v, %v)", i, d, lo, hi)
				}
			}
		})
	}
}

// TestRetryTransportError: a connection dropped without an answer is
// retried for GET and not for POST.
func TestRetryTransportError(t *testing.T) {
	hangUp := func(w http.ResponseWriter) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}
	c, ts := newServer(t, func(w http.ResponseWriter, _ *http.Request, hit int) {
		if hit == 1 {
			hangUp(w)
			return
		}
		reply(w, 200, `{"_id":"u1","username":"alice","success":true}`)
	})
	if _, err := c.Me(context.Background(), admin); err != nil {
		t.Fatalf("GET after a dropped connection: %v", err)
	}
	if ts.hits() != 2 {
		t.Errorf("GET hits = %d, want 2", ts.hits())
	}

	c2, ts2 := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) { hangUp(w) })
	_, err := c2.CreateToken(context.Background(), admin, "u1", testSecret)
	e := mustError(t, err)
	if e.Status != 0 || !IsUnavailable(err) || e.Err == nil {
		t.Errorf("err = %+v, IsUnavailable=%v", e, IsUnavailable(err))
	}
	if ts2.hits() != 1 {
		t.Errorf("POST hits = %d, want 1", ts2.hits())
	}
}

func TestRetryBackoffHonorsContext(t *testing.T) {
	c, ts := newServer(t, static(503, `{"success":false,"error":"down"}`))
	c.sleep = func(context.Context, time.Duration) error { return context.Canceled }
	_, err := c.Me(context.Background(), admin)
	e := mustError(t, err)
	if e.Status != 503 || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v (status %d), want the 503 with context.Canceled attached", err, e.Status)
	}
	if ts.hits() != 1 {
		t.Errorf("hits = %d, want 1", ts.hits())
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := sleepCtx(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("sleepCtx on a canceled context = %v", err)
	}
	if err := sleepCtx(context.Background(), 0); err != nil {
		t.Errorf("sleepCtx(0) = %v", err)
	}
}

func TestBackoffBounds(t *testing.T) {
	for attempt := range maxRetries {
		d0 := retryBaseDelay << attempt
		for range 200 {
			if d := backoff(attempt); d < d0/2 || d >= d0 {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v)", attempt, d, d0/2, d0)
			}
		}
	}
}

// TestSecretsNeverLeak uses a server that echoes the request body and the
// X-Auth-Token header into its error message.
func TestSecretsNeverLeak(t *testing.T) {
	var ts *testServer
	var c *Client
	c, ts = newServer(t, func(w http.ResponseWriter, r *http.Request, hit int) {
		ts.mu.Lock()
		body := string(ts.reqs[hit-1].Body) // the wrapper already read r.Body
		ts.mu.Unlock()
		msg := "bad input " + body + " token=" + r.Header.Get("X-Auth-Token") + " [error-echo]"
		b, _ := json.Marshal(map[string]any{"success": false, "error": msg, "errorType": "error-echo", "message": msg})
		reply(w, 400, string(b))
	})
	for _, ep := range []string{"me", "users.info", "users.create", "users.update", "users.createToken", "users.list", "logout", "login", "info"} {
		err := callEndpoint(c, ep)
		e := mustError(t, err) // checks Error() for secrets
		assertNoSecrets(t, ep+" Message", e.Message)
		assertNoSecrets(t, ep+" %+v", fmt.Sprintf("%+v", e))
		assertNoSecrets(t, ep+" %#v", fmt.Sprintf("%#v", e))
		if ep != "info" && !strings.Contains(e.Message, "[redacted]") {
			t.Errorf("%s: Message %q: secret not visibly redacted", ep, e.Message)
		}
	}
	if _, err := c.LoginResume(context.Background(), testResume); err != nil {
		assertNoSecrets(t, "resume Error()", err.Error())
	}
	// The secrets did reach the server, in headers/bodies only.
	r := ts.last(t)
	if !bytes.Contains(r.Body, []byte(testResume)) {
		t.Error("resume token not sent in the body")
	}
}

func TestCredentialsFormatting(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	res := LoginResult{UserID: "u1", AuthToken: testToken, Me: &User{ID: "u1"}}
	log.Info("x", "cr", admin, "res", res)
	for _, s := range []string{
		fmt.Sprint(admin), fmt.Sprintf("%v %+v %#v %s", admin, admin, admin, admin),
		fmt.Sprintf("%v %+v %#v %s", res, res, res, res), buf.String(),
	} {
		assertNoSecrets(t, "formatted credentials", s)
		if !strings.Contains(s, "u1") && !strings.Contains(s, "adminId") {
			t.Errorf("formatted value lost the user id: %s", s)
		}
	}
}

func TestBodyLimit(t *testing.T) {
	c, _ := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"_id":"u1","pad":"`))
		_, _ = w.Write(bytes.Repeat([]byte("a"), maxBodyBytes))
		_, _ = w.Write([]byte(`","success":true}`))
	})
	_, err := c.Me(context.Background(), admin)
	e := mustError(t, err)
	if e.Status != 200 || !strings.Contains(e.Message, "exceeds") {
		t.Errorf("err = %v", err)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	_, target := newServer(t, static(200, `{"_id":"u1","username":"alice","success":true}`))
	c, _ := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		http.Redirect(w, r, target.URL+"/api/v1/me?x=leak", http.StatusFound)
	})
	_, err := c.Me(context.Background(), admin)
	e := mustError(t, err)
	if e.Status != http.StatusFound || !strings.Contains(e.Message, "redirect") || strings.Contains(e.Message, "x=leak") {
		t.Errorf("err = %v", err)
	}
	if target.hits() != 0 {
		t.Error("redirect was followed (credentials forwarded)")
	}
}

func TestInvalidArguments(t *testing.T) {
	c, ts := newServer(t, static(200, `{"success":true}`))
	ctx := context.Background()
	bad := Credentials{UserID: "adminId", AuthToken: testToken + "\r\nX-Evil: 1"}
	calls := map[string]func() error{
		"me empty creds":       func() error { _, err := c.Me(ctx, Credentials{}); return err },
		"me token no user":     func() error { _, err := c.Me(ctx, Credentials{AuthToken: testToken}); return err },
		"me CRLF token":        func() error { _, err := c.Me(ctx, bad); return err },
		"login empty password": func() error { _, err := c.LoginPassword(ctx, "alice", ""); return err },
		"login empty user":     func() error { _, err := c.LoginPassword(ctx, "", testPassword); return err },
		"resume empty":         func() error { _, err := c.LoginResume(ctx, ""); return err },
		"info empty username":  func() error { _, err := c.UserInfoByUsername(ctx, admin, ""); return err },
		"info empty id":        func() error { _, err := c.UserInfoByID(ctx, admin, ""); return err },
		"update empty id":      func() error { _, err := c.UpdateUser(ctx, admin, "", UpdateUserData{}); return err },
		"createToken empty id": func() error { _, err := c.CreateToken(ctx, admin, "", testSecret); return err },
		"list negative":        func() error { _, _, err := c.ListUsers(ctx, admin, -1, 0); return err },
		"logout empty creds":   func() error { return c.Logout(ctx, Credentials{UserID: "x"}) },
	}
	for name, f := range calls {
		err := f()
		e := mustError(t, err)
		if e.Status != 0 || IsUnavailable(err) || IsUnauthorized(err) || e.Message == "" {
			t.Errorf("%s: err = %+v (IsUnavailable=%v)", name, e, IsUnavailable(err))
		}
	}
	if ts.hits() != 0 {
		t.Errorf("invalid calls reached the server %d times", ts.hits())
	}
}

func TestDecodeErrorRetryAfterVariants(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		msg    string
		want   time.Duration
	}{
		{"epoch ms", http.Header{"X-Ratelimit-Reset": {strconv.FormatInt(fixedNow.Add(2*time.Second).UnixMilli(), 10)}}, "", 2 * time.Second},
		{"epoch s", http.Header{"X-Ratelimit-Reset": {strconv.FormatInt(fixedNow.Add(9*time.Second).Unix(), 10)}}, "", 9 * time.Second},
		{"delta s", http.Header{"X-Ratelimit-Reset": {"5"}}, "", 5 * time.Second},
		{"garbage header, text", http.Header{"X-Ratelimit-Reset": {"soon"}}, "You must wait 1 second before", time.Second},
		{"Retry-After", http.Header{"Retry-After": {"7"}}, "", 7 * time.Second},
		{"huge capped", http.Header{"X-Ratelimit-Reset": {"9223372036854775807"}}, "", maxRetryAfter},
		{"nothing", http.Header{}, "slow down", 0},
	}
	for _, tt := range tests {
		b, _ := json.Marshal(map[string]any{"success": false, "error": tt.msg})
		e := decodeError("me", 429, tt.header, b, fixedNow)
		if e.RetryAfter != tt.want {
			t.Errorf("%s: RetryAfter = %v, want %v", tt.name, e.RetryAfter, tt.want)
		}
	}
}

func TestCleanText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\r\n b\t\tc", "a b c"},
		{"  x  ", "x"},
		{"bad\xffutf8", "bad\uFFFDutf8"},
		{strings.Repeat("é", 600), strings.Repeat("é", maxMessageLen) + "…"},
		{"line\u2028sep", "line sep"},
	}
	for _, tt := range tests {
		if got := cleanText(tt.in, maxMessageLen); got != tt.want {
			t.Errorf("cleanText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzDecodeError(f *testing.F) {
	seeds := []string{
		`{"status":"error","message":"You must be logged in to do this."}`,
		`{"success":false,"error":"You must be logged in to do this.","status":"error","message":"You must be logged in to do this."}`,
		`{"success":false,"error":"alice is already in use :( [error-field-unavailable]","errorType":"error-field-unavailable"}`,
		`{"success":false,"error":"must NOT have additional properties [invalid-params]","errorType":"invalid-params"}`,
		`{"success":false,"error":"Match error: Expected string, got undefined in field email"}`,
		`{"status":"error","error":403,"message":"You've been logged out by the server. Please log in again."}`,
		`{"success":false,"error":"Error, too many requests. Please slow down. You must wait 60 seconds before trying this endpoint again. [error-too-many-requests]"}`,
		`{"success":false,"error":{"error":"x","reason":"y","errorType":"z"}}`,
		`{"success":false,"error":"Change avatar is not allowed [error-not-allowed]","errorType":"error-forbidden"}`,
		`{"success":false,"error":"[error-forbidden]","errorType":"error-forbidden"}`,
		`{"error":1e400}`, `{"error":-0.5}`, `{"error":[]}`, `null`, `[]`, `"str"`, ``,
		"<html><title>502 Bad Gateway</title></html>",
		"\xff\xfe\x00[",
	}
	for i, s := range seeds {
		f.Add(400+i%3*29, []byte(s), strconv.FormatInt(fixedNow.UnixMilli()+int64(i)*1000, 10), "text/html", i%2 == 0)
	}
	f.Fuzz(func(t *testing.T, status int, body []byte, reset, ctype string, login bool) {
		ep := "users.create"
		if login {
			ep = "login"
		}
		h := http.Header{}
		h["X-Ratelimit-Reset"] = []string{reset}
		h["Content-Type"] = []string{ctype}
		h["Retry-After"] = []string{reset}
		for _, e := range []*Error{
			decodeError(ep, status, h, body, fixedNow),
			checkSuccessBody(ep, 200, h, body, fixedNow),
		} {
			if e == nil {
				continue
			}
			s := e.Error()
			if strings.ContainsAny(s, "\r\n") || !utf8.ValidString(s) {
				t.Fatalf("Error() not a clean line: %q", s)
			}
			if utf8.RuneCountInString(e.Message) > maxMessageLen+1 {
				t.Fatalf("Message too long: %d runes", utf8.RuneCountInString(e.Message))
			}
			if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
				t.Fatalf("RetryAfter = %v", e.RetryAfter)
			}
			_ = IsUnauthorized(e)
			_ = IsNotFound(e)
			_ = IsFieldUnavailable(e)
			_ = IsUnavailable(e)
			_ = IsTokensBug(e)
			_, _ = IsRateLimited(e)
			if p := MissingPermission(e); p != "" && !IsForbidden(e) {
				t.Fatalf("MissingPermission %q for an error that is not a refusal: %v", p, e)
			}
			if utf8.RuneCountInString(e.Code) > 101 || strings.ContainsAny(e.Code, "\r\n") {
				t.Fatalf("Code not clean: %q", e.Code)
			}
		}
	})
}

type fakeTimeout struct{}

func (fakeTimeout) Error() string   { return "i/o timeout" }
func (fakeTimeout) Timeout() bool   { return true }
func (fakeTimeout) Temporary() bool { return true }

func TestTransportTimeoutWrapped(t *testing.T) {
	err := transportError(context.Background(), "me", fakeTimeout{})
	if !errors.Is(err, context.DeadlineExceeded) || !IsUnavailable(err) || err.Message != "request timed out" {
		t.Errorf("err = %v", err)
	}
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) {
		t.Error("the original net.Error is no longer reachable")
	}
}
