package rocketchat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// ddpAnswer is method.callAnon's 200 body around a DDP result message.
func ddpAnswer(result string) string {
	b, _ := json.Marshal(map[string]any{"message": result, "success": true})
	return string(b)
}

const ddpOK = `{"msg":"result","id":"1","result":{"id":"u1","token":"` + testNewToken + `","tokenExpires":{"$date":1767225600000},"type":"password"}}`

func digestOf(pw string) string {
	sum := sha256.Sum256([]byte(pw))
	return hex.EncodeToString(sum[:])
}

// sentLogin decodes the login method call a request carried.
func sentLogin(t *testing.T, r capturedRequest) map[string]any {
	t.Helper()
	checkJSONPost(t, r, "/api/v1/method.callAnon/login")
	checkNoAuthHeaders(t, r)
	var body map[string]string
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body) != 1 {
		t.Fatalf("body = %s", r.Body)
	}
	var m struct {
		Msg    string `json:"msg"`
		ID     string `json:"id"`
		Method string `json:"method"`
		Params []map[string]any
	}
	if err := json.Unmarshal([]byte(body["message"]), &m); err != nil {
		t.Fatalf("message = %q: %v", body["message"], err)
	}
	if m.Msg != "method" || m.ID == "" || m.Method != "login" || len(m.Params) != 1 {
		t.Fatalf("message = %+v", m)
	}
	if strings.Contains(string(r.Body), testPassword) {
		t.Fatal("the plain password was sent")
	}
	return m.Params[0]
}

func TestLoginPersonRequest(t *testing.T) {
	c, ts := newServer(t, static(200, ddpAnswer(ddpOK)))
	pw := map[string]any{"digest": digestOf(testPassword), "algorithm": "sha-256"}
	cases := []struct {
		user, code string
		want       map[string]any
	}{
		{"alice", "", map[string]any{"user": map[string]any{"username": "alice"}, "password": pw}},
		{"alice@example.com", "", map[string]any{"user": map[string]any{"email": "alice@example.com"}, "password": pw}},
		{"alice", "123456", map[string]any{"totp": map[string]any{"code": "123456",
			"login": map[string]any{"user": map[string]any{"username": "alice"}, "password": pw}}}},
	}
	for _, tc := range cases {
		res, err := c.LoginPerson(context.Background(), tc.user, testPassword, tc.code)
		if err != nil || res.UserID != "u1" || res.AuthToken != testNewToken {
			t.Fatalf("LoginPerson(%q, %q) = %s, %v", tc.user, tc.code, res, err)
		}
		if got := sentLogin(t, ts.last(t)); !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("params = %v\nwant %v", got, tc.want)
		}
	}
	if _, err := c.LoginPerson(context.Background(), "", testPassword, ""); err == nil || ts.hits() != 3 {
		t.Fatal("an empty user name was sent")
	}
	if logs := ts.logs.String(); strings.Contains(logs, digestOf(testPassword)) || strings.Contains(logs, "123456") {
		t.Fatalf("the password digest or the code was logged: %s", logs)
	}
}

func TestLoginPersonRefusals(t *testing.T) {
	cases := []struct {
		name, msg string
		check     func(error) bool
		tf        *TwoFactor
		retry     time.Duration
	}{
		{"wrong password, 7.0+", `{"msg":"result","id":"1","error":{"isClientSafe":true,"error":401,"reason":"User not found","message":"User not found [401]"}}`,
			IsBadCredentials, nil, 0},
		{"wrong password, 6.x", `{"msg":"result","id":"1","error":{"isClientSafe":true,"error":403,"reason":"User not found","message":"User not found [403]","errorType":"Meteor.Error"}}`,
			IsBadCredentials, nil, 0},
		{"TOTP required", `{"msg":"result","id":"1","error":{"isClientSafe":true,"error":"totp-required","reason":"TOTP Required","details":{"method":"totp","codeGenerated":false,"availableMethods":["totp","email"]},"message":"TOTP Required [totp-required]"}}`,
			func(err error) bool { _, ok := IsTwoFactorRequired(err); return ok }, &TwoFactor{Method: "totp", Available: []string{"totp", "email"}}, 0},
		{"e-mail code sent", `{"msg":"result","id":"1","error":{"error":"totp-required","reason":"TOTP Required","details":{"method":"email","codeGenerated":true,"emailOrUsername":"alice","availableMethods":["email"]},"message":"TOTP Required [totp-required]"}}`,
			func(err error) bool { _, ok := IsTwoFactorRequired(err); return ok }, &TwoFactor{Method: "email", CodeGenerated: true, EmailOrUsername: "alice", Available: []string{"email"}}, 0},
		{"wrong code", `{"msg":"result","id":"1","error":{"error":"totp-invalid","reason":"TOTP Invalid","details":{"method":"email","emailOrUsername":"alice","codeGenerated":false,"codeCount":1,"codeExpires":["2025-06-01T13:00:00.000Z"]},"message":"TOTP Invalid [totp-invalid]"}}`,
			func(err error) bool { _, ok := IsTwoFactorInvalid(err); return ok }, &TwoFactor{Method: "email", EmailOrUsername: "alice"}, 0},
		{"deactivated", `{"msg":"result","id":"1","error":{"error":"error-user-is-not-activated","reason":"User is not activated","message":"User is not activated [error-user-is-not-activated]"}}`,
			IsUserDeactivated, nil, 0},
		{"blocked", `{"msg":"result","id":"1","error":{"error":"error-login-blocked-for-ip","reason":"Login has been temporarily blocked For IP","message":"Login has been temporarily blocked For IP [error-login-blocked-for-ip]"}}`,
			IsLoginBlocked, nil, 0},
		{"DDP rate limit", `{"msg":"result","id":"1","error":{"error":"too-many-requests","reason":"Error, too many requests. Please slow down. You must wait 7 seconds before trying again.","details":{"timeToReset":6500},"message":"Error, too many requests. Please slow down. You must wait 7 seconds before trying again. [too-many-requests]"}}`,
			func(err error) bool { _, ok := IsRateLimited(err); return ok }, nil, 6500 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := newServer(t, static(200, ddpAnswer(tc.msg)))
			_, err := c.LoginPerson(context.Background(), "alice", testPassword, "")
			e := mustError(t, err)
			if !tc.check(err) || e.Endpoint != "login" {
				t.Fatalf("predicate false for %v", err)
			}
			if !reflect.DeepEqual(e.TwoFactor, tc.tf) {
				t.Fatalf("TwoFactor = %+v, want %+v", e.TwoFactor, tc.tf)
			}
			if d, _ := IsRateLimited(err); d != tc.retry {
				t.Fatalf("RetryAfter = %v, want %v", d, tc.retry)
			}
			others := map[string]bool{
				"bad":         IsBadCredentials(err),
				"deactivated": IsUserDeactivated(err),
				"blocked":     IsLoginBlocked(err),
				"undisclosed": IsUndisclosedLoginRefusal(err),
				"unavailable": IsUnavailable(err),
				"forbidden":   IsForbidden(err),
			}
			n := 0
			for _, v := range others {
				if v {
					n++
				}
			}
			if n > 1 {
				t.Fatalf("several predicates hold: %v", others)
			}
		})
	}
}

func TestLoginPersonBadAnswers(t *testing.T) {
	for _, body := range []string{
		ddpAnswer("not json"),
		ddpAnswer(`{"msg":"ping"}`),
		ddpAnswer(`{"msg":"result","id":"1","result":{"id":"u1"}}`),
		ddpAnswer(`{"msg":"result","id":"1"}`),
		`{"success":true}`,
	} {
		c, _ := newServer(t, static(200, body))
		_, err := c.LoginPerson(context.Background(), "alice", testPassword, "")
		if e := mustError(t, err); e.Status != 200 || IsBadCredentials(err) {
			t.Fatalf("%s: %v", body, err)
		}
	}
}

// Without method.callAnon (404), LoginPerson uses REST /api/v1/login with
// the code in the body; 8.x refuses there without a reason.
func TestLoginPersonRESTFallback(t *testing.T) {
	c, ts := newServer(t, func(w http.ResponseWriter, r *http.Request, hit int) {
		switch {
		case r.URL.Path == "/api/v1/method.callAnon/login":
			reply(w, 404, `{"success":false,"error":"API endpoint does not exist"}`)
		case hit == 2:
			reply(w, 200, `{"status":"success","data":{"userId":"u1","authToken":"`+testNewToken+`"},"success":true}`)
		case hit == 4:
			reply(w, 401, `{"success":false,"error":"unauthorized"}`)
		default:
			reply(w, 401, `{"status":"error","error":"totp-required","details":{"method":"totp","codeGenerated":false,"availableMethods":["totp"]},"message":"TOTP Required","success":false}`)
		}
	})
	res, err := c.LoginPerson(context.Background(), "alice", testPassword, "123456")
	if err != nil || res.AuthToken != testNewToken {
		t.Fatalf("fallback login = %s, %v", res, err)
	}
	r := ts.last(t)
	checkJSONPost(t, r, "/api/v1/login")
	jsonEqual(t, r.Body, `{"user":"alice","password":"`+testPassword+`","code":"123456"}`)

	_, err = c.LoginPerson(context.Background(), "alice", testPassword, "")
	if !IsUndisclosedLoginRefusal(err) || IsBadCredentials(err) {
		t.Fatalf("8.x REST refusal: %v", err)
	}
	jsonEqual(t, ts.last(t).Body, `{"user":"alice","password":"`+testPassword+`"}`)
	_, err = c.LoginPerson(context.Background(), "alice", testPassword, "")
	if tf, ok := IsTwoFactorRequired(err); !ok || tf.Method != "totp" || IsUndisclosedLoginRefusal(err) {
		t.Fatalf("7.x REST totp-required: %v %+v", err, tf)
	}
}

func TestSendEmailCode(t *testing.T) {
	c, ts := newServer(t, static(200, `{"success":true}`))
	if err := c.SendEmailCode(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
	r := ts.last(t)
	checkJSONPost(t, r, "/api/v1/users.2fa.sendEmailCode")
	checkNoAuthHeaders(t, r)
	jsonEqual(t, r.Body, `{"emailOrUsername":"alice"}`)
	if err := c.SendEmailCode(context.Background(), ""); err == nil || ts.hits() != 1 {
		t.Fatal("an empty value was sent")
	}
}

// FuzzDecodeLoginResult: whatever DDP message Rocket.Chat (or something
// posing as it) returns, decoding neither panics nor yields an error that
// is not one clean line, nor a result without a token.
func FuzzDecodeLoginResult(f *testing.F) {
	for _, s := range []string{
		ddpOK,
		`{"msg":"result","id":"1","error":{"error":"totp-required","details":{"method":"email","availableMethods":["email",1,{}],"codeGenerated":"yes"}}}`,
		`{"msg":"result","id":"1","error":{"error":"too-many-requests","details":{"timeToReset":1e300}}}`,
		`{"msg":"result","id":"1","error":{"error":"too-many-requests","details":{"timeToReset":-5}}}`,
		`{"msg":"result","id":"1","error":{"error":401,"message":"User not found [401]"}}`,
		`{"msg":"result","id":"1","error":{"error":"totp-invalid","details":"nope"}}`,
		`{"msg":"result","id":"1","error":null,"result":null}`,
		`{"msg":"result","error":[]}`, `{"msg":"result","error":"x\n[y]"}`, `null`, ``, "\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		res, err := decodeLoginResult(msg, fixedNow)
		if err == nil {
			if res.UserID == "" || res.AuthToken == "" {
				t.Fatalf("result without id or token: %s", res)
			}
			return
		}
		e, ok := asError(err)
		if !ok {
			t.Fatalf("%T is not *Error", err)
		}
		s := e.Error()
		if strings.ContainsAny(s, "\r\n") || !utf8.ValidString(s) {
			t.Fatalf("Error() not a clean line: %q", s)
		}
		if e.RetryAfter < 0 || e.RetryAfter > maxRetryAfter {
			t.Fatalf("RetryAfter = %v", e.RetryAfter)
		}
		if tf := e.TwoFactor; tf != nil && (len(tf.Available) > 8 || utf8.RuneCountInString(tf.EmailOrUsername) > 257 || strings.ContainsAny(tf.Method, "\r\n")) {
			t.Fatalf("TwoFactor not bounded: %+v", tf)
		}
		_ = IsBadCredentials(err)
		_, _ = IsTwoFactorRequired(err)
		_, _ = IsTwoFactorInvalid(err)
		_ = IsUndisclosedLoginRefusal(err)
		_, _ = IsRateLimited(err)
	})
}
