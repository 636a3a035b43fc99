package rcemu

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// identityServer is a Custom OAuth identity endpoint: token → JSON. It
// records how each token arrived.
type identityServer struct {
	*httptest.Server
	mu     sync.Mutex
	people map[string]map[string]any
	via    []string // "header" | "payload" per call
}

func newIdentityServer(t *testing.T) *identityServer {
	is := &identityServer{people: map[string]map[string]any{}}
	is.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, via := r.URL.Query().Get("access_token"), "payload"
		if h := r.Header.Get("Authorization"); h != "" {
			tok, via = strings.TrimPrefix(h, "Bearer "), "header"
		}
		is.mu.Lock()
		is.via = append(is.via, via)
		p, ok := is.people[tok]
		is.mu.Unlock()
		if r.Header.Get("Accept") != "application/json" || !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = json.NewEncoder(w).Encode(p)
	}))
	t.Cleanup(is.Close)
	return is
}

func (is *identityServer) set(token string, p map[string]any) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.people[token] = p
}

func (is *identityServer) lastVia() string {
	is.mu.Lock()
	defer is.mu.Unlock()
	if len(is.via) == 0 {
		return ""
	}
	return is.via[len(is.via)-1]
}

func oauthBody(service, token string) map[string]any {
	return map[string]any{"serviceName": service, "accessToken": token, "expiresIn": 300}
}

func TestOAuthLoginCreatesThenReuses(t *testing.T) {
	for _, via := range []string{"header", "payload"} {
		t.Run(via, func(t *testing.T) {
			is := newIdentityServer(t)
			s, ts := newTestServer(t, Config{DisableRateLimit: true, OAuthServices: []OAuthService{{
				Name: "rcsso", IdentityURL: is.URL + "/oauth/identity", TokenSentVia: via, UsernameField: "username", MergeUsers: true,
			}}})
			is.set("t1", map[string]any{"id": "local:alice", "username": "alice", "name": "Alice Example", "email": "alice@example.test"})
			c := newClient(t, ts)
			before := s.UserCount()
			r := c.post("/api/v1/login", oauthBody("rcsso", "t1")).wantStatus(t, http.StatusOK)
			if is.lastVia() != via {
				t.Fatalf("token sent via %q, want %q", is.lastVia(), via)
			}
			uid, tok := r.str("data.userId"), r.str("data.authToken")
			if !tokenRe.MatchString(tok) || r.str("data.me.username") != "alice" || r.field("success") != true {
				t.Fatalf("login: %s", r.raw)
			}
			u, _ := s.UserByID(uid)
			if u.Username != "alice" || u.Name != "Alice Example" || len(u.Emails) != 1 || !u.Emails[0].Verified ||
				u.Emails[0].Address != "alice@example.test" || u.ResumeTokens != 1 || s.OAuthID(uid, "rcsso") != "local:alice" {
				t.Fatalf("user %+v, oauth id %q", u, s.OAuthID(uid, "rcsso"))
			}
			c.as(uid, tok).get("/api/v1/me").wantStatus(t, http.StatusOK)

			// Second login (another token for the same person): same user,
			// a new resume token.
			is.set("t2", map[string]any{"id": "local:alice", "username": "alice", "name": "Alice Example", "email": "alice@example.test"})
			r2 := c.post("/api/v1/login", oauthBody("rcsso", "t2")).wantStatus(t, http.StatusOK)
			if r2.str("data.userId") != uid || r2.str("data.authToken") == tok {
				t.Fatalf("second login: %s", r2.raw)
			}
			if s.UserCount() != before+1 {
				t.Fatalf("users: %d, want %d", s.UserCount(), before+1)
			}
			if u, _ := s.UserByID(uid); u.ResumeTokens != 2 {
				t.Fatalf("resume tokens = %d, want 2", u.ResumeTokens)
			}
		})
	}
}

func TestOAuthLoginErrorsPerProfile(t *testing.T) {
	is := newIdentityServer(t)
	for _, p := range allProfiles {
		t.Run(p, func(t *testing.T) {
			idURL := is.URL + "/id"
			_, ts := newTestServer(t, Config{Profile: p, DisableRateLimit: true,
				OAuthServices: []OAuthService{{Name: "rcsso", IdentityURL: idURL, TokenSentVia: "header", UsernameField: "username"}}})
			c := newClient(t, ts)
			unknown := c.post("/api/v1/login", oauthBody("nope", "x")).wantStatus(t, http.StatusUnauthorized)
			failed := c.post("/api/v1/login", oauthBody("rcsso", "unknown-token")).wantStatus(t, http.StatusUnauthorized)
			noExp := c.post("/api/v1/login", map[string]any{"serviceName": "rcsso", "accessToken": "x"}).wantStatus(t, http.StatusUnauthorized)
			switch p {
			case "6.x":
				unknown.wantBody(t, `{"status":"error","message":"Unexpected AccessToken service nope"}`)
				failed.wantBody(t, `{"status":"error","message":"Failed to fetch identity from rcsso at `+idURL+`. Unauthorized"}`)
				noExp.wantBody(t, `{"status":"error","message":"Match error: Missing key 'expiresIn'"}`)
			case "7.x":
				unknown.wantBody(t, `{"status":"error","success":false,"message":"Unexpected AccessToken service nope"}`)
				failed.wantBody(t, `{"status":"error","success":false,"message":"Failed to fetch identity from rcsso at `+idURL+`. Unauthorized"}`)
			case "8.x":
				unknown.wantBody(t, `{"success":false,"error":"unauthorized"}`)
				failed.wantBody(t, `{"success":false,"error":"unauthorized"}`)
			}
		})
	}
}

func TestOAuthLoginIdentityFields(t *testing.T) {
	is := newIdentityServer(t)
	_, ts := newTestServer(t, Config{Profile: "7.x", DisableRateLimit: true, OAuthServices: []OAuthService{
		{Name: "nested", IdentityURL: is.URL, TokenSentVia: "header", UsernameField: "user.login", EmailField: "user.mail", NameField: "user.display"},
		{Name: "nouser", IdentityURL: is.URL, TokenSentVia: "header"},
	}})
	c := newClient(t, ts)
	is.set("n", map[string]any{"sub": 42, "user": map[string]any{"login": "carol", "mail": "carol@example.test", "display": "Carol C."}})
	r := c.post("/api/v1/login", oauthBody("nested", "n")).wantStatus(t, http.StatusOK)
	if r.str("data.me.username") != "carol" || r.str("data.me.name") != "Carol C." || r.str("data.me.email") != "carol@example.test" {
		t.Fatalf("nested fields: %s", r.raw)
	}
	is.set("m", map[string]any{"id": "9", "user": map[string]any{"mail": "dave@example.test"}})
	c.post("/api/v1/login", oauthBody("nested", "m")).wantStatus(t, http.StatusUnauthorized).
		wantBody(t, `{"status":"error","success":false,"message":"Failed to fetch identity from nested at `+is.URL+`. CustomOAuth: Failed to extract username"}`)
	is.set("noid", map[string]any{"username": "erin"})
	c.post("/api/v1/login", oauthBody("nouser", "noid")).wantStatus(t, http.StatusUnauthorized).
		wantBody(t, `{"status":"error","success":false,"message":"Service data for service nouser must include id"}`)
}

func TestOAuthMergeUsers(t *testing.T) {
	is := newIdentityServer(t)
	s, ts := newTestServer(t, Config{Profile: "7.x", DisableRateLimit: true, OAuthServices: []OAuthService{
		{Name: "merge", IdentityURL: is.URL, TokenSentVia: "header", UsernameField: "username", MergeUsers: true},
		{Name: "strict", IdentityURL: is.URL, TokenSentVia: "payload", UsernameField: "username"},
	}})
	bobID, err := s.AddUser(NewUser{Username: "bob", Name: "Bob Old", Email: "bob@example.test", Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, ts)
	// Without "Merge users" an existing username is not taken over.
	is.set("b", map[string]any{"id": "site:bob", "username": "Bob", "name": "Bob New"})
	c.post("/api/v1/login", oauthBody("strict", "b")).wantStatus(t, http.StatusUnauthorized).
		wantBody(t, `{"status":"error","success":false,"error":403,"message":"Username already exists."}`)
	// With it the user is merged (case-insensitive username) and follows
	// the identity's name.
	r := c.post("/api/v1/login", oauthBody("merge", "b")).wantStatus(t, http.StatusOK)
	if r.str("data.userId") != bobID || s.OAuthID(bobID, "merge") != "site:bob" {
		t.Fatalf("merge: %s", r.raw)
	}
	if u, _ := s.UserByID(bobID); u.Name != "Bob New" || u.Username != "bob" {
		t.Fatalf("merged user %+v", u)
	}
	// Merge by e-mail when the username differs.
	is.set("e", map[string]any{"id": "site:robert", "username": "robert", "email": "BOB@example.test"})
	if r := c.post("/api/v1/login", oauthBody("merge", "e")).wantStatus(t, http.StatusOK); r.str("data.userId") != bobID {
		t.Fatalf("merge by e-mail: %s", r.raw)
	}
	// A known id whose name changed is refused without "Merge users"
	// (Rocket.Chat's quirk) and updated with it.
	is.set("s1", map[string]any{"id": "site:sam", "username": "sam", "name": "Sam"})
	samID := c.post("/api/v1/login", oauthBody("strict", "s1")).wantStatus(t, http.StatusOK).str("data.userId")
	is.set("s2", map[string]any{"id": "site:sam", "username": "sam", "name": "Samuel"})
	c.post("/api/v1/login", oauthBody("strict", "s2")).wantStatus(t, http.StatusUnauthorized).
		wantBody(t, `{"status":"error","success":false,"error":"CustomOAuth","message":"User with username sam already exists"}`)
	if u, _ := s.UserByID(samID); u.Name != "Sam" {
		t.Fatalf("name changed anyway: %+v", u)
	}
}

func TestOAuthLoginTokenCapAndConcurrency(t *testing.T) {
	is := newIdentityServer(t)
	s, ts := newTestServer(t, Config{DisableRateLimit: true, MaxResumeTokens: 3, OAuthServices: []OAuthService{
		{Name: "rcsso", IdentityURL: is.URL, TokenSentVia: "header", UsernameField: "username"}}})
	is.set("t", map[string]any{"id": "local:zoe", "username": "zoe"})
	before := s.UserCount()
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() {
			body, _ := json.Marshal(oauthBody("rcsso", "t"))
			res, err := http.Post(ts.URL+"/api/v1/login", "application/json", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer res.Body.Close()
			var out struct {
				Data struct{ UserID string } `json:"data"`
			}
			_ = json.NewDecoder(res.Body).Decode(&out)
			ids[i] = out.Data.UserID
		})
	}
	wg.Wait()
	if s.UserCount() != before+1 {
		t.Fatalf("concurrent first logins created %d users", s.UserCount()-before)
	}
	for _, id := range ids {
		if id == "" || id != ids[0] {
			t.Fatalf("user ids %v", ids)
		}
	}
	if u, _ := s.UserByID(ids[0]); u.ResumeTokens != 3 {
		t.Fatalf("resume tokens = %d, want the cap 3", u.ResumeTokens)
	}
}

func TestOAuthDDPLogin(t *testing.T) {
	is := newIdentityServer(t)
	_, ts := newTestServer(t, Config{OAuthServices: []OAuthService{
		{Name: "rcsso", IdentityURL: is.URL, TokenSentVia: "header", UsernameField: "username"}}})
	is.set("t", map[string]any{"id": "local:yan", "username": "yan"})
	post := func(body map[string]any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		res, err := http.Post(ts.URL+"/_emu/ddp-login", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		data, _ := io.ReadAll(res.Body)
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		return res.StatusCode, m
	}
	if st, m := post(oauthBody("rcsso", "t")); st != 200 || m["username"] != "yan" || m["type"] != "rcsso" {
		t.Fatalf("ddp login: %d %v", st, m)
	}
	// Plain errors are sanitized over DDP.
	if st, m := post(oauthBody("nope", "t")); st != 400 || m["error"] != float64(500) || m["reason"] != "Internal server error" {
		t.Fatalf("unknown service over DDP: %d %v", st, m)
	}
	if st, m := post(map[string]any{"serviceName": "rcsso", "accessToken": "t", "expiresIn": 1.5}); st != 400 || m["reason"] != "Match failed" {
		t.Fatalf("bad expiresIn over DDP: %d %v", st, m)
	}
}

// 9.0 without the oauth-enterprise module switches every Custom OAuth
// service off: it vanishes from settings.oauth and its access-token logins
// are 500 "Internal server error" (no CustomOAuth registered the service).
// The built-in WordPress provider is not gated, until PR #41992 removes it.
func TestCustomOAuthGate(t *testing.T) {
	is := newIdentityServer(t)
	is.set("rcsso", map[string]any{"id": "local:dana", "username": "dana", "name": "Dana", "email": "dana@example.test"})
	is.set("wordpress", map[string]any{"id": "local:walt", "username": "walt", "name": "Walt"})
	services := []OAuthService{
		{Name: "rcsso", IdentityURL: is.URL + "/oauth/identity", TokenSentVia: "header", UsernameField: "username", MergeUsers: true},
		{Name: "wordpress", Builtin: true, IdentityURL: is.URL + "/oauth/identity", TokenSentVia: "header"},
	}
	cases := []struct {
		name              string
		cfg               Config
		custom, wordpress int // login status
		listed            string
	}{
		{"8.x", Config{Profile: "8.x"}, 200, 200, "rcsso,wordpress"},
		{"8.7", Config{Profile: "8.7"}, 200, 200, "rcsso,wordpress"},
		{"9.0 without the module", Config{Profile: "9.0"}, 500, 200, "wordpress"},
		{"9.0 with the module", Config{Profile: "9.0", OAuthEnterprise: true}, 200, 200, "rcsso,wordpress"},
		{"9.0 without the module, WordPress removed (#41992)", Config{Profile: "9.0", BuiltinOAuthRemoved: true}, 500, 500, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.OAuthServices, tc.cfg.DisableRateLimit = services, true
			s, ts := newTestServer(t, tc.cfg)
			c := newClient(t, ts)
			r := c.get("/api/v1/settings.oauth").wantStatus(t, 200)
			var names []string
			for _, x := range r.field("services").([]any) {
				m := x.(map[string]any)
				names = append(names, m["service"].(string))
				if m["service"] == "rcsso" && (m["custom"] != true || m["identityPath"] != "/oauth/identity" || m["serverURL"] != is.URL) {
					t.Fatalf("custom service entry: %v", m)
				}
				if m["service"] == "wordpress" && (m["custom"] != nil || m["identityPath"] != "/oauth/identity") {
					t.Fatalf("wordpress entry: %v", m)
				}
				if strings.Contains(r.raw, "secret") {
					t.Fatalf("settings.oauth leaks a secret: %s", r.raw)
				}
			}
			if strings.Join(names, ",") != tc.listed {
				t.Fatalf("settings.oauth lists %v, want %s", names, tc.listed)
			}
			for svc, want := range map[string]int{"rcsso": tc.custom, "wordpress": tc.wordpress} {
				r := c.post("/api/v1/login", oauthBody(svc, svc)).wantStatus(t, want)
				if want == 500 {
					r.wantBody(t, `{"success":false,"error":"Internal server error"}`)
				}
			}
			if n := s.UserCount(); n != map[bool]int{true: 1, false: 0}[tc.custom == 200]+map[bool]int{true: 1, false: 0}[tc.wordpress == 200] {
				t.Fatalf("users created: %d", n)
			}
		})
	}
}

// The built-in WordPress provider has no "Merge users": a person whose
// chat account came from the Custom OAuth service cannot log in through it
// ("Username already exists.").
func TestWordPressDoesNotMerge(t *testing.T) {
	is := newIdentityServer(t)
	is.set("t", map[string]any{"id": "local:erin", "username": "erin", "name": "Erin"})
	s, ts := newTestServer(t, Config{Profile: "9.0", OAuthEnterprise: true, DisableRateLimit: true, OAuthServices: []OAuthService{
		{Name: "rcsso", IdentityURL: is.URL, TokenSentVia: "header", UsernameField: "username", MergeUsers: true},
		{Name: "wordpress", Builtin: true, IdentityURL: is.URL, TokenSentVia: "header"},
	}})
	c := newClient(t, ts)
	c.post("/api/v1/login", oauthBody("rcsso", "t")).wantStatus(t, 200)
	c.post("/api/v1/login", oauthBody("wordpress", "t")).wantStatus(t, 401)
	if s.UserCount() != 1 {
		t.Fatalf("users: %d", s.UserCount())
	}
}
