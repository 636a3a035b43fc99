package rcemu

import (
	"strconv"
	"testing"
	"time"
)

const tooMany = `{"success":false,"error":"Error, too many requests. Please slow down. You must wait 60 seconds before trying this endpoint again. [error-too-many-requests]"}`

func TestRateLimitLogin(t *testing.T) {
	clock := newFakeClock()
	s, ts := newTestServer(t, Config{Now: clock.Now})
	c := newClient(t, ts).fromIP("192.0.2.1")
	for i := 1; i <= 10; i++ {
		r := c.post("/api/v1/login", map[string]any{"user": "admin", "password": "wrong"}).wantStatus(t, 401)
		if got := r.header.Get("X-RateLimit-Remaining"); got != strconv.Itoa(10-i) {
			t.Fatalf("call %d: X-RateLimit-Remaining = %q", i, got)
		}
		if r.header.Get("X-RateLimit-Limit") != "10" {
			t.Fatalf("X-RateLimit-Limit = %q", r.header.Get("X-RateLimit-Limit"))
		}
	}
	r := c.post("/api/v1/login", map[string]any{"user": "admin", "password": testAdminPW}).wantStatus(t, 429)
	r.wantBody(t, tooMany)
	if r.header.Get("X-RateLimit-Remaining") != "0" ||
		r.header.Get("X-RateLimit-Reset") != strconv.FormatInt(clock.Now().Add(time.Minute).UnixMilli(), 10) {
		t.Fatalf("429 headers: %v", r.header)
	}
	// Admin credentials do not bypass the limiter on /login.
	adminClient(t, s, ts).fromIP("192.0.2.1").post("/api/v1/login", map[string]any{"user": "admin", "password": testAdminPW}).wantStatus(t, 429)
	// Other IPs (X-Real-IP) have their own counters.
	c.fromIP("192.0.2.2").post("/api/v1/login", map[string]any{"user": "admin", "password": testAdminPW}).wantStatus(t, 200)
	// The window resets after the interval.
	clock.Advance(30 * time.Second)
	r = c.post("/api/v1/login", map[string]any{"user": "admin", "password": testAdminPW}).wantStatus(t, 429)
	if r.body["error"] != "Error, too many requests. Please slow down. You must wait 30 seconds before trying this endpoint again. [error-too-many-requests]" {
		t.Fatalf("after 30s: %s", r.raw)
	}
	clock.Advance(30 * time.Second)
	c.post("/api/v1/login", map[string]any{"user": "admin", "password": testAdminPW}).wantStatus(t, 200)
	if st := s.Stats(); st.RateLimited != 3 || st.LoginCalls != 15 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestRateLimitBypassAndRoutes(t *testing.T) {
	s, ts := newTestServer(t, Config{})
	admin := adminClient(t, s, ts)
	id := createUser(t, admin, "mia", "mia@example.com", "pw")
	// Admins hold api-bypass-rate-limit: no limit, no headers.
	for range 25 {
		r := admin.get("/api/v1/users.info?userId="+id).wantStatus(t, 200)
		if r.header.Get("X-RateLimit-Limit") != "" {
			t.Fatal("rate-limit headers on a bypassed call")
		}
	}
	uid, tok := login(t, newClient(t, ts), "mia", "pw")
	mia := newClient(t, ts).as(uid, tok)
	for range 10 {
		mia.get("/api/v1/users.info?userId="+id).wantStatus(t, 200)
	}
	mia.get("/api/v1/users.info?userId="+id).wantStatus(t, 429).wantBody(t, tooMany)
	// Limits are per route+method: /me has its own counter.
	mia.get("/api/v1/me").wantStatus(t, 200)
	// A bot also bypasses.
	botID, _ := s.AddUser(NewUser{Username: "robo", Password: "pw", Roles: []string{"bot"}})
	_, btok := login(t, newClient(t, ts).fromIP("198.51.100.7"), "robo", "pw")
	bot := newClient(t, ts).as(botID, btok)
	for range 15 {
		bot.get("/api/v1/me").wantStatus(t, 200)
	}
	s.ResetRateLimits()
	mia.get("/api/v1/users.info?userId="+id).wantStatus(t, 200)
}

func TestRateLimitDisabled(t *testing.T) {
	_, ts := newTestServer(t, Config{DisableRateLimit: true})
	c := newClient(t, ts)
	for range 15 {
		r := c.post("/api/v1/login", map[string]any{"user": "admin", "password": "x"}).wantStatus(t, 401)
		if r.header.Get("X-RateLimit-Limit") != "" {
			t.Fatal("headers with the limiter off")
		}
	}
	s, ts2 := newTestServer(t, Config{})
	s.SetSetting("API_Enable_Rate_Limiter_Limit_Calls_Default", 2)
	c2 := newClient(t, ts2)
	c2.get("/api/v1/settings.public").wantStatus(t, 200)
	c2.get("/api/v1/settings.public").wantStatus(t, 200)
	c2.get("/api/v1/settings.public").wantStatus(t, 429)
}
