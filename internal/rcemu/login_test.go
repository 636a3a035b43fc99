package rcemu

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestInfoVersionPerProfile(t *testing.T) {
	for p, v := range map[string]string{"5.x": "5.4.0", "6.x": "6.10.0", "7.x": "7.10.0", "8.x": "8.0.0", "": "8.0.0", "8.7": "8.7.0", "9.0": "9.0.0"} {
		_, ts := newTestServer(t, Config{Profile: p})
		newClient(t, ts).get("/api/info").wantStatus(t, 200).wantBody(t, `{"version":"`+v+`","success":true}`)
	}
	if _, err := New(Config{AdminPassword: "x", Profile: "4.x"}); err == nil {
		t.Fatal("New accepted profile 4.x")
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New accepted an empty AdminPassword")
	}
}

var tokenRe = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

func TestLoginBodyVariants(t *testing.T) {
	s, ts := newTestServer(t, Config{DisableRateLimit: true})
	admin := adminClient(t, s, ts)
	id := createUser(t, admin, "Jane.Doe", "Jane@Example.com", "s3cret")
	c := newClient(t, ts)
	digest := sha256.Sum256([]byte("s3cret"))
	bodies := []map[string]any{
		{"user": "Jane.Doe", "password": "s3cret"},
		{"user": "jane.doe", "password": "s3cret"}, // case-insensitive like Meteor
		{"user": "jane@example.com", "password": "s3cret"},
		{"username": "Jane.Doe", "password": "s3cret"},
		{"email": "JANE@example.com", "password": "s3cret"},
		{"user": map[string]any{"username": "Jane.Doe"}, "password": "s3cret"},
		{"user": map[string]any{"email": "Jane@Example.com"}, "password": "s3cret"},
		{"user": "Jane.Doe", "password": map[string]any{"digest": hex.EncodeToString(digest[:]), "algorithm": "sha-256"}},
	}
	seen := map[string]bool{}
	for i, b := range bodies {
		r := c.post("/api/v1/login", b).wantStatus(t, 200)
		tok := r.str("data.authToken")
		if r.str("status") != "success" || r.str("data.userId") != id || !tokenRe.MatchString(tok) {
			t.Fatalf("body %d: %s", i, r.raw)
		}
		if seen[tok] {
			t.Fatalf("body %d: token reused", i)
		}
		seen[tok] = true
		if r.str("data.me.username") != "Jane.Doe" || r.field("data.me.services.password.exists") != true {
			t.Fatalf("body %d: me = %v", i, r.field("data.me"))
		}
		if strings.Contains(r.raw, "bcrypt") || strings.Contains(r.raw, "$2a$") {
			t.Fatalf("login leaked the hash: %s", r.raw)
		}
	}
	if got, _ := s.UserByUsername("jane.doe"); got.ResumeTokens != len(bodies) {
		t.Fatalf("ResumeTokens = %d, want %d", got.ResumeTokens, len(bodies))
	}
	// The stored hash is base64(sha256(token)).
	s.mu.Lock()
	u := s.st.users[id]
	h := u.tokens[0].hashedToken
	s.mu.Unlock()
	if len(h) != 44 || !strings.HasSuffix(h, "=") {
		t.Fatalf("hashedToken %q is not padded std base64 of sha256", h)
	}
}

func TestLoginSuccessEnvelopePerProfile(t *testing.T) {
	for _, p := range allProfiles {
		s, ts := newTestServer(t, Config{Profile: p})
		_ = s
		r := newClient(t, ts).post("/api/v1/login", map[string]any{"user": "admin", "password": testAdminPW}).wantStatus(t, 200)
		_, has := r.body["success"]
		if has != (p != "6.x") {
			t.Fatalf("%s: success present = %v; %s", p, has, r.raw)
		}
	}
}

func TestLoginErrorsPerProfile(t *testing.T) {
	cases := []struct {
		name string
		body map[string]any
		want map[string]string // profile -> exact body
	}{
		{"wrong password", map[string]any{"user": "admin", "password": "nope"}, map[string]string{
			"6.x": `{"status":"error","error":"Unauthorized","message":"Unauthorized"}`,
			"7.x": `{"success":false,"status":"error","error":"Unauthorized","message":"Unauthorized"}`,
			"8.x": `{"success":false,"error":"unauthorized"}`,
		}},
		{"unknown user", map[string]any{"username": "ghost", "password": "x"}, map[string]string{
			"6.x": `{"status":"error","error":"Unauthorized","message":"Unauthorized"}`,
			"7.x": `{"success":false,"status":"error","error":"Unauthorized","message":"Unauthorized"}`,
			"8.x": `{"success":false,"error":"unauthorized"}`,
		}},
		{"unknown resume", map[string]any{"resume": "nope"}, map[string]string{
			"6.x": `{"status":"error","error":403,"message":"You've been logged out by the server. Please log in again."}`,
			"7.x": `{"success":false,"status":"error","error":403,"message":"You've been logged out by the server. Please log in again."}`,
			"8.x": `{"success":false,"error":"unauthorized"}`,
		}},
		{"unknown iframe token", map[string]any{"iframe": true, "token": "nope"}, map[string]string{
			"6.x": `{"status":"error","error":400,"message":"Unrecognized options for login request"}`,
			"7.x": `{"success":false,"status":"error","error":400,"message":"Unrecognized options for login request"}`,
			"8.x": `{"success":false,"error":"unauthorized"}`,
		}},
		{"iframe token not a string", map[string]any{"iframe": true, "token": 5}, map[string]string{
			"6.x": `{"status":"error","error":400,"message":"Match failed"}`,
		}},
	}
	for _, p := range allProfiles {
		_, ts := newTestServer(t, Config{Profile: p, DisableRateLimit: true})
		c := newClient(t, ts)
		for _, tc := range cases {
			want, ok := tc.want[p]
			if !ok {
				continue
			}
			t.Run(p+"/"+tc.name, func(t *testing.T) {
				c.post("/api/v1/login", tc.body).wantStatus(t, 401).wantBody(t, want)
			})
		}
	}
}

func TestLoginInactiveUser(t *testing.T) {
	s, ts := newTestServer(t, Config{Profile: "7.x", DisableRateLimit: true})
	if _, err := s.AddUser(NewUser{Username: "sleepy", Name: "S", Email: "s@example.com", Password: "pw", Inactive: true}); err != nil {
		t.Fatal(err)
	}
	newClient(t, ts).post("/api/v1/login", map[string]any{"user": "sleepy", "password": "pw"}).wantStatus(t, 401).
		wantBody(t, `{"success":false,"status":"error","error":"error-user-is-not-activated","message":"User is not activated"}`)
}

func TestResumeLoginReturnsSameToken(t *testing.T) {
	s, ts := newTestServer(t, Config{Profile: "7.x", DisableRateLimit: true})
	c := newClient(t, ts)
	uid, tok := login(t, c, "admin", testAdminPW)
	before, _ := s.UserByID(uid)
	r := c.post("/api/v1/login", map[string]any{"resume": tok}).wantStatus(t, 200)
	if r.str("data.authToken") != tok || r.str("data.userId") != uid || r.field("success") != true {
		t.Fatalf("resume answered %s", r.raw)
	}
	after, _ := s.UserByID(uid)
	if after.ResumeTokens != before.ResumeTokens {
		t.Fatalf("resume added a token: %d -> %d", before.ResumeTokens, after.ResumeTokens)
	}
}

func TestResumeTokenExpiry(t *testing.T) {
	clock := newFakeClock()
	_, ts := newTestServer(t, Config{DisableRateLimit: true, Now: clock.Now, Profile: "6.x"})
	c := newClient(t, ts)
	uid, tok := login(t, c, "admin", testAdminPW)
	clock.Advance(91 * 24 * time.Hour)
	c.post("/api/v1/login", map[string]any{"resume": tok}).wantStatus(t, 401).
		wantBody(t, `{"status":"error","error":403,"message":"Your session has expired. Please log in again."}`)
	// REST auth does not check `when` (spec §2.2).
	c.as(uid, tok).get("/api/v1/me").wantStatus(t, 200)
}

func TestIframeLogin(t *testing.T) {
	s, ts := newTestServer(t, Config{DisableRateLimit: true})
	admin := adminClient(t, s, ts)
	id := createUser(t, admin, "frank", "frank@example.com", "pw")
	if err := s.SetIframeToken(id, "iframe-secret"); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, ts)
	r := c.post("/api/v1/login", map[string]any{"iframe": true, "token": "iframe-secret"}).wantStatus(t, 200)
	if r.str("data.userId") != id || !tokenRe.MatchString(r.str("data.authToken")) {
		t.Fatalf("iframe login: %s", r.raw)
	}
	if u, _ := s.UserByID(id); u.ResumeTokens != 1 || u.IframeToken != "iframe-secret" {
		t.Fatalf("after iframe login: %+v", u)
	}
	// The token is a normal resume token.
	c.as(id, r.str("data.authToken")).get("/api/v1/me").wantStatus(t, 200)
}

func TestTokenCapEvictsOldest(t *testing.T) {
	s, ts := newTestServer(t, Config{DisableRateLimit: true})
	c := newClient(t, ts)
	uid := s.AdminID()
	var tokens []string
	for range 51 {
		_, tok := login(t, c, "admin", testAdminPW)
		tokens = append(tokens, tok)
	}
	u, _ := s.UserByID(uid)
	if u.ResumeTokens != 50 || u.PATs != 1 {
		t.Fatalf("after 51 logins: %d resume tokens, %d PATs; want 50, 1", u.ResumeTokens, u.PATs)
	}
	c.as(uid, tokens[0]).get("/api/v1/me").wantStatus(t, 401)
	c.as(uid, tokens[1]).get("/api/v1/me").wantStatus(t, 200)
	c.as(uid, tokens[50]).get("/api/v1/me").wantStatus(t, 200)
	c.as(uid, testAdminPAT).get("/api/v1/me").wantStatus(t, 200)
}

func TestTokenCapConfigurable(t *testing.T) {
	s, ts := newTestServer(t, Config{DisableRateLimit: true, MaxResumeTokens: 2})
	c := newClient(t, ts)
	for range 5 {
		login(t, c, "admin", testAdminPW)
	}
	if u, _ := s.UserByID(s.AdminID()); u.ResumeTokens != 2 {
		t.Fatalf("ResumeTokens = %d, want 2", u.ResumeTokens)
	}
}

func TestUnauthenticatedPerProfile(t *testing.T) {
	want := map[string]string{
		"6.x": `{"status":"error","message":"You must be logged in to do this."}`,
		"7.x": `{"success":false,"error":"You must be logged in to do this.","status":"error","message":"You must be logged in to do this."}`,
		"8.x": `{"success":false,"error":"You must be logged in to do this."}`,
	}
	for _, p := range allProfiles {
		s, ts := newTestServer(t, Config{Profile: p})
		c := newClient(t, ts)
		c.get("/api/v1/me").wantStatus(t, 401).wantBody(t, want[p])
		c.as(s.AdminID(), "wrong").get("/api/v1/users.info?userId=x").wantStatus(t, 401).wantBody(t, want[p])
		c.as("", testAdminPAT).post("/api/v1/users.create", map[string]any{}).wantStatus(t, 401).wantBody(t, want[p])
		c.as("someone-else", testAdminPAT).post("/api/v1/logout", nil).wantStatus(t, 401).wantBody(t, want[p])
	}
}

func TestMe(t *testing.T) {
	s, ts := newTestServer(t, Config{Profile: "8.x"})
	r := adminClient(t, s, ts).get("/api/v1/me").wantStatus(t, 200)
	if r.field("success") != true || r.str("_id") != s.AdminID() || r.str("username") != "admin" ||
		r.str("email") != "admin@rcemu.invalid" || r.field("services.password.exists") != true ||
		r.field("active") != true || r.field("settings.preferences.useEmojis") != true {
		t.Fatalf("me = %s", r.raw)
	}
	if strings.Contains(r.raw, "bcrypt") || strings.Contains(r.raw, "hashedToken") {
		t.Fatalf("me leaked secrets: %s", r.raw)
	}
	if !strings.HasSuffix(r.str("avatarUrl"), "/avatar/admin") {
		t.Fatalf("avatarUrl = %q", r.str("avatarUrl"))
	}
	if got := s.Stats().MeCalls; got != 1 {
		t.Fatalf("MeCalls = %d", got)
	}
}

func TestLogoutPerProfile(t *testing.T) {
	want := map[string]string{
		"6.x": `{"status":"success","data":{"message":"You've been logged out!"}}`,
		"7.x": `{"status":"success","data":{"message":"You've been logged out!"},"success":true}`,
		"8.x": `{"status":"success","data":{"message":"You've been logged out!"},"success":true}`,
	}
	for _, p := range allProfiles {
		s, ts := newTestServer(t, Config{Profile: p, DisableRateLimit: true})
		c := newClient(t, ts)
		uid, tok1 := login(t, c, "admin", testAdminPW)
		_, tok2 := login(t, c, "admin", testAdminPW)
		c.as(uid, tok1).post("/api/v1/logout", nil).wantStatus(t, 200).wantBody(t, want[p])
		c.as(uid, tok1).get("/api/v1/me").wantStatus(t, 401)
		c.as(uid, tok2).get("/api/v1/logout").wantStatus(t, 200) // GET accepted
		c.as(uid, tok2).get("/api/v1/me").wantStatus(t, 401)
		if u, _ := s.UserByID(uid); u.ResumeTokens != 0 || u.PATs != 1 {
			t.Fatalf("%s: after logout %+v", p, u)
		}
	}
}

func TestDDPLogin(t *testing.T) {
	s, ts := newTestServer(t, Config{}) // rate limiter on: DDP is not limited
	c := newClient(t, ts)
	var tok string
	for i := range 15 {
		r := c.post("/_emu/ddp-login", map[string]any{"user": map[string]any{"username": "admin"}, "password": testAdminPW}).wantStatus(t, 200)
		if r.str("id") != s.AdminID() || r.str("type") != "password" || !tokenRe.MatchString(r.str("token")) || r.str("tokenExpires") == "" {
			t.Fatalf("ddp login %d: %s", i, r.raw)
		}
		tok = r.str("token")
	}
	r := c.post("/_emu/ddp-login", map[string]any{"resume": tok}).wantStatus(t, 200)
	if r.str("token") != tok || r.str("type") != "resume" || r.str("username") != "admin" {
		t.Fatalf("ddp resume: %s", r.raw)
	}
	c.post("/_emu/ddp-login", map[string]any{"resume": "bad"}).wantStatus(t, 400).wantBody(t,
		`{"error":403,"reason":"You've been logged out by the server. Please log in again.","message":"You've been logged out by the server. Please log in again. [403]","errorType":"Meteor.Error"}`)
	c.post("/_emu/ddp-login", map[string]any{"iframe": true, "token": "bad"}).wantStatus(t, 400).wantBody(t,
		`{"error":400,"reason":"Unrecognized options for login request","message":"Unrecognized options for login request [400]","errorType":"Meteor.Error"}`)
	// The REST-only mapping `user: "name"` is not part of the Meteor method.
	c.post("/_emu/ddp-login", map[string]any{"user": "admin", "password": testAdminPW}).wantStatus(t, 400)
	c.post("/_emu/ddp-logout", map[string]any{"token": tok}).wantStatus(t, 200)
	c.post("/_emu/ddp-login", map[string]any{"resume": tok}).wantStatus(t, 400)
	if st := s.Stats(); st.DDPLoginCalls != 20 || st.LoginCalls != 0 || st.RateLimited != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestTwoFactorEmulation(t *testing.T) {
	clock := newFakeClock()
	s, ts := newTestServer(t, Config{Profile: "7.x", TwoFactor: true, DisableRateLimit: true, Now: clock.Now})
	admin := adminClient(t, s, ts)
	r := admin.post("/api/v1/users.create", map[string]any{"username": "v", "email": "v@example.com", "password": "pw",
		"name": "V", "verified": true}).wantStatus(t, 200)
	id := r.str("user._id")
	_ = s.SetIframeToken(id, "itok")
	c := newClient(t, ts)
	c.post("/api/v1/login", map[string]any{"iframe": true, "token": "itok"}).wantStatus(t, 401)
	r = c.post("/api/v1/login", map[string]any{"user": "v", "password": "pw"}).wantStatus(t, 401)
	if r.body["error"] != "totp-required" {
		t.Fatalf("password login with e-mail 2FA: %s", r.raw)
	}
	// users.update: the admin logged in with a normal token needs a code
	// once the 30-minute grace period after creation is over; a PAT with
	// bypassTwoFactor never does.
	clock.Advance(time.Hour)
	uid, tok := login(t, c, "admin", testAdminPW)
	upd := map[string]any{"userId": id, "data": map[string]any{"name": "V2"}}
	r = c.as(uid, tok).post("/api/v1/users.update", upd).wantStatus(t, 400)
	if r.body["errorType"] != "totp-required" {
		t.Fatalf("users.update without code: %s", r.raw)
	}
	admin.post("/api/v1/users.update", upd).wantStatus(t, 200)
}
