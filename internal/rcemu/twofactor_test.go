package rcemu

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// methodLogin calls the login method through POST
// /api/v1/method.callAnon/login like Rocket.Chat's web client and returns
// the parsed DDP result message.
func methodLogin(t *testing.T, c *client, params map[string]any) map[string]any {
	t.Helper()
	msg, _ := json.Marshal(map[string]any{"msg": "method", "id": "7", "method": "login", "params": []any{params}})
	r := c.post("/api/v1/method.callAnon/login", map[string]any{"message": string(msg)}).wantStatus(t, http.StatusOK)
	if r.body["success"] != true {
		t.Fatalf("method.callAnon: %s", r.raw)
	}
	var out map[string]any
	if err := json.Unmarshal([]byte(r.str("message")), &out); err != nil {
		t.Fatalf("message is not JSON: %s", r.raw)
	}
	if out["msg"] != "result" || out["id"] != "7" {
		t.Fatalf("result message = %v", out)
	}
	return out
}

func pwLogin(user, password string) map[string]any {
	return map[string]any{"user": map[string]any{"username": user},
		"password": map[string]any{"digest": sha256Hex(password), "algorithm": "sha-256"}}
}

func withCode(login map[string]any, code string) map[string]any {
	return map[string]any{"totp": map[string]any{"login": login, "code": code}}
}

func ddpErr(t *testing.T, res map[string]any) (code any, details map[string]any) {
	t.Helper()
	e, ok := res["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error in %v", res)
	}
	d, _ := e["details"].(map[string]any)
	return e["error"], d
}

// TestTOTPCodeRFC6238 checks the code generator against RFC 6238
// Appendix B (SHA-1 secret "12345678901234567890", T = 59 s → 94287082,
// whose last six digits an authenticator app shows).
func TestTOTPCodeRFC6238(t *testing.T) {
	code, err := TOTPCode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", time.Unix(59, 0))
	if err != nil || code != "287082" {
		t.Fatalf("TOTPCode = %q, %v; want 287082", code, err)
	}
}

func TestMethodCallAnonLogin(t *testing.T) {
	for _, p := range allProfiles {
		t.Run(p, func(t *testing.T) {
			s, ts := newTestServer(t, Config{Profile: p, DisableRateLimit: true})
			c := newClient(t, ts)
			res := methodLogin(t, c, pwLogin("admin", testAdminPW))
			r, _ := res["result"].(map[string]any)
			tok, _ := r["token"].(string)
			if r["id"] != s.AdminID() || tok == "" || r["type"] != "password" {
				t.Fatalf("result = %v", res)
			}
			if _, ok := r["tokenExpires"].(map[string]any)["$date"].(float64); !ok {
				t.Fatalf("tokenExpires = %v", r["tokenExpires"])
			}
			c.as(s.AdminID(), tok).get("/api/v1/me").wantStatus(t, http.StatusOK)

			// Unknown users and wrong passwords read alike (loginErrorMessageOverride).
			want := float64(401)
			if p == "6.x" {
				want = 403
			}
			for _, l := range []map[string]any{pwLogin("admin", "wrong"), pwLogin("ghost", "x")} {
				code, _ := ddpErr(t, methodLogin(t, c, l))
				if code != want {
					t.Fatalf("credential error code = %v, want %v", code, want)
				}
			}
			res = methodLogin(t, c, pwLogin("ghost", "x"))
			if e := res["error"].(map[string]any); e["reason"] != "User not found" || e["isClientSafe"] != true {
				t.Fatalf("error = %v", e)
			}
		})
	}
}

func TestMethodCallAnonMalformed(t *testing.T) {
	_, ts := newTestServer(t, Config{DisableRateLimit: true})
	c := newClient(t, ts)
	c.post("/api/v1/method.callAnon/login", map[string]any{}).wantStatus(t, 400).
		wantBody(t, `{"success":false,"error":"must have required property 'message' [invalid-params]","errorType":"invalid-params"}`)
	c.post("/api/v1/method.callAnon/login", map[string]any{"message": "{"}).wantStatus(t, 400).
		wantBody(t, `{"success":false,"error":"Invalid method call"}`)
	msg, _ := json.Marshal(map[string]any{"msg": "method", "id": "1", "method": "deleteFileMessage", "params": []any{"x"}})
	r := c.post("/api/v1/method.callAnon/deleteFileMessage", map[string]any{"message": string(msg)}).wantStatus(t, 200)
	if !strings.Contains(r.str("message"), `"error":404`) {
		t.Fatalf("unknown method: %s", r.raw)
	}
	msg, _ = json.Marshal(map[string]any{"msg": "method", "id": "1", "method": "login", "params": []any{"not-an-object"}})
	r = c.post("/api/v1/method.callAnon/login", map[string]any{"message": string(msg)}).wantStatus(t, 200)
	if !strings.Contains(r.str("message"), `"reason":"Match failed"`) {
		t.Fatalf("bad params: %s", r.raw)
	}
}

func TestTOTPLogin(t *testing.T) {
	clock := newFakeClock()
	s, ts := newTestServer(t, Config{TwoFactor: true, DisableRateLimit: true, Now: clock.Now})
	secret := NewTOTPSecret()
	if _, err := s.AddUser(NewUser{Username: "ada", Email: "ada@example.com", Verified: true, Password: "pw", TOTPSecret: secret}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, ts)
	code, details := ddpErr(t, methodLogin(t, c, pwLogin("ada", "pw")))
	if code != "totp-required" || !reflect.DeepEqual(details, map[string]any{
		"method": "totp", "codeGenerated": false, "availableMethods": []any{"totp"}}) {
		t.Fatalf("without a code: %v %v", code, details)
	}
	// A wrong password with a code is still a credential error.
	if code, _ := ddpErr(t, methodLogin(t, c, withCode(pwLogin("ada", "nope"), "123456"))); code != float64(401) {
		t.Fatalf("wrong password with a code: %v", code)
	}
	now, _ := TOTPCode(secret, clock.Now())
	wrong := "000000"
	if wrong == now {
		wrong = "111111"
	}
	code, details = ddpErr(t, methodLogin(t, c, withCode(pwLogin("ada", "pw"), wrong)))
	if code != "totp-invalid" || details["method"] != "totp" {
		t.Fatalf("wrong code: %v %v", code, details)
	}
	// One step either side is accepted (MaxDelta 1), two are not.
	prev, _ := TOTPCode(secret, clock.Now().Add(-30*time.Second))
	old, _ := TOTPCode(secret, clock.Now().Add(-90*time.Second))
	if old != now && old != prev {
		if code, _ := ddpErr(t, methodLogin(t, c, withCode(pwLogin("ada", "pw"), old))); code != "totp-invalid" {
			t.Fatalf("a code 90 s old: %v", code)
		}
	}
	for _, good := range []string{now, prev} {
		res := methodLogin(t, c, withCode(pwLogin("ada", "pw"), good))
		if res["error"] != nil {
			t.Fatalf("right code: %v", res)
		}
	}
	// REST /api/v1/login takes the code from the body or x-2fa-code (7.x
	// shows the 2FA error; 8.x only "unauthorized").
	rest := c.post("/api/v1/login", map[string]any{"user": "ada", "password": "pw", "code": now}).wantStatus(t, 200)
	if rest.str("data.authToken") == "" {
		t.Fatalf("REST login with code: %s", rest.raw)
	}
	c.post("/api/v1/login", map[string]any{"user": "ada", "password": "pw"}).wantStatus(t, 401).
		wantBody(t, `{"success":false,"error":"unauthorized"}`)
	if u, _ := s.UserByUsername("ada"); !u.TOTP || len(s.Mailbox()) != 0 {
		t.Fatalf("snapshot %+v, mails %v", u, s.Mailbox())
	}
}

func TestRESTLoginCodeHeader(t *testing.T) {
	clock := newFakeClock()
	s, ts := newTestServer(t, Config{Profile: "7.x", TwoFactor: true, DisableRateLimit: true, Now: clock.Now})
	secret := NewTOTPSecret()
	if _, err := s.AddUser(NewUser{Username: "bo", Password: "pw", TOTPSecret: secret}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, ts)
	r := c.post("/api/v1/login", map[string]any{"user": "bo", "password": "pw"}).wantStatus(t, 401)
	if r.str("error") != "totp-required" || r.str("details.method") != "totp" {
		t.Fatalf("7.x without code: %s", r.raw)
	}
	code, _ := TOTPCode(secret, clock.Now())
	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/v1/login", strings.NewReader(`{"user":"bo","password":"pw"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-2fa-code", code)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("x-2fa-code login: %d", res.StatusCode)
	}
	r = c.post("/api/v1/login", map[string]any{"user": "bo", "password": "pw", "code": "000000x"}).wantStatus(t, 401)
	if r.str("error") != "totp-invalid" {
		t.Fatalf("7.x wrong code: %s", r.raw)
	}
}

func TestEmailCodeLogin(t *testing.T) {
	clock := newFakeClock()
	s, ts := newTestServer(t, Config{TwoFactor: true, DisableRateLimit: true, Now: clock.Now})
	if _, err := s.AddUser(NewUser{Username: "cy", Email: "Cy@Example.com", Verified: true, Password: "pw", Email2FA: true}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, ts)
	code, details := ddpErr(t, methodLogin(t, c, pwLogin("cy", "pw")))
	if code != "totp-required" || !reflect.DeepEqual(details, map[string]any{"method": "email", "codeGenerated": true,
		"emailOrUsername": "cy", "availableMethods": []any{"email"}}) {
		t.Fatalf("first login: %v %v", code, details)
	}
	mails := s.Mailbox()
	if len(mails) != 1 || mails[0].To != "Cy@Example.com" || mails[0].Subject != "Authentication code" {
		t.Fatalf("mailbox = %+v", mails)
	}
	digits, ok := s.LastEmailCode("cy@example.com")
	if !ok || len(digits) != 6 || !strings.Contains(mails[0].Text, digits[:3]+"-"+digits[3:]) {
		t.Fatalf("code %q in %q", digits, mails[0].Text)
	}
	// A second attempt does not mail another code while one is valid.
	_, details = ddpErr(t, methodLogin(t, c, pwLogin("cy", "pw")))
	if details["codeGenerated"] != false || details["codeCount"] != float64(1) || len(s.Mailbox()) != 1 {
		t.Fatalf("second attempt: %v, %d mails", details, len(s.Mailbox()))
	}
	wrong := "000000"
	if wrong == digits {
		wrong = "999999"
	}
	if code, details := ddpErr(t, methodLogin(t, c, withCode(pwLogin("cy", "pw"), wrong))); code != "totp-invalid" || details["method"] != "email" {
		t.Fatalf("wrong code: %v %v", code, details)
	}
	// The code as shown in the mail (123-456) works, once.
	shown := digits[:3] + "-" + digits[3:]
	if res := methodLogin(t, c, withCode(pwLogin("cy", "pw"), shown)); res["error"] != nil {
		t.Fatalf("right code: %v", res)
	}
	if code, details := ddpErr(t, methodLogin(t, c, withCode(pwLogin("cy", "pw"), digits))); code != "totp-invalid" || details["codeGenerated"] != true {
		t.Fatalf("used code: %v %v", code, details)
	}
	// An expired code is refused (and a new one mailed).
	digits, _ = s.LastEmailCode("cy@example.com")
	clock.Advance(time.Hour + time.Second)
	if code, details := ddpErr(t, methodLogin(t, c, withCode(pwLogin("cy", "pw"), digits))); code != "totp-invalid" || details["codeGenerated"] != true {
		t.Fatalf("expired code: %v %v", code, details)
	}
	if n := len(s.Mailbox()); n != 3 {
		t.Fatalf("%d mails, want 3", n)
	}
	// Resume logins are exempt.
	d2, _ := s.LastEmailCode("cy@example.com")
	res := methodLogin(t, c, withCode(pwLogin("cy", "pw"), d2))
	r := res["result"].(map[string]any)
	uid, tok := r["id"].(string), r["token"].(string)
	c.post("/api/v1/login", map[string]any{"resume": tok}).wantStatus(t, 200)
	if u, _ := s.UserByID(uid); u.EmailCodes != 0 {
		t.Fatalf("codes left: %d", u.EmailCodes)
	}
}

func TestSendEmailCode(t *testing.T) {
	s, ts := newTestServer(t, Config{TwoFactor: true, DisableRateLimit: true})
	if _, err := s.AddUser(NewUser{Username: "di", Email: "di@example.com", Verified: true, Password: "pw", Email2FA: true}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, ts)
	c.post("/api/v1/users.2fa.sendEmailCode", map[string]any{}).wantStatus(t, 400).
		wantBody(t, `{"success":false,"error":"emailOrUsername is required [error-parameter-required]","errorType":"error-parameter-required"}`)
	c.post("/api/v1/users.2fa.sendEmailCode", map[string]any{"emailOrUsername": "nobody"}).wantStatus(t, 200).wantBody(t, `{"success":true}`)
	if len(s.Mailbox()) != 0 {
		t.Fatal("mail for an unknown user")
	}
	c.post("/api/v1/users.2fa.sendEmailCode", map[string]any{"emailOrUsername": "di"}).wantStatus(t, 200)
	c.post("/api/v1/users.2fa.sendEmailCode", map[string]any{"emailOrUsername": "DI@example.com"}).wantStatus(t, 200)
	if len(s.Mailbox()) != 2 {
		t.Fatalf("mailbox = %+v", s.Mailbox())
	}
	// Both codes are valid.
	r := c.get("/_emu/mailbox?to=di@example.com").wantStatus(t, 200)
	if n := len(r.body["mails"].([]any)); n != 2 {
		t.Fatalf("GET /_emu/mailbox: %s", r.raw)
	}
	if u, _ := s.UserByUsername("di"); u.EmailCodes != 2 {
		t.Fatalf("codes = %d", u.EmailCodes)
	}
}

func TestMethodLoginRateLimit(t *testing.T) {
	clock := newFakeClock()
	s, ts := newTestServer(t, Config{Now: clock.Now})
	c := newClient(t, ts)
	for i := range 5 {
		if res := methodLogin(t, c, pwLogin("admin", "wrong")); res["error"].(map[string]any)["error"] != float64(401) {
			t.Fatalf("call %d: %v", i+1, res)
		}
	}
	code, details := ddpErr(t, methodLogin(t, c, pwLogin("admin", testAdminPW)))
	if code != "too-many-requests" || details["timeToReset"] != float64(10000) {
		t.Fatalf("6th call: %v %v", code, details)
	}
	// The bucket is per address (X-Real-IP) and User-Agent.
	if res := methodLogin(t, c.fromIP("10.9.9.9"), pwLogin("admin", testAdminPW)); res["error"] != nil {
		t.Fatalf("other address: %v", res)
	}
	clock.Advance(10 * time.Second)
	if res := methodLogin(t, c, pwLogin("admin", testAdminPW)); res["error"] != nil {
		t.Fatalf("after the window: %v", res)
	}
	if st := s.Stats(); st.RateLimited != 1 || st.MethodLoginCalls != 7 {
		t.Fatalf("stats = %+v", st)
	}
}
