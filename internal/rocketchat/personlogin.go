package rocketchat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// A person's own login: the native login on the IFrame URL logs a person
// in with their Rocket.Chat password and, when Rocket.Chat asks for one,
// their 2FA code, and hands the resulting resume token to the chat.

// TwoFactor is what Rocket.Chat says about the second factor it wants: the
// details of a totp-required or totp-invalid Meteor error
// (RocketChat/Rocket.Chat apps/meteor/app/2fa/server/code/index.ts
// @f16baf07fafc8bdd26538b8969566885fd7aaf4a; authentication.yaml's 2FA
// introduction).
type TwoFactor struct {
	// Method is the method whose code Rocket.Chat checks: "totp" (the
	// person's authenticator app), "email" (a code Rocket.Chat e-mails) or
	// "password"; at most 32 characters, "" when the details had none.
	Method string
	// Available lists the person's enabled methods (at most 8).
	Available []string
	// CodeGenerated is true when Rocket.Chat e-mailed a new code with this
	// answer (method email); false when a code it sent earlier is still
	// valid.
	CodeGenerated bool
	// EmailOrUsername is what users.2fa.sendEmailCode takes to send
	// another code (method email); at most 256 characters.
	EmailOrUsername string
}

// twoFactorFrom decodes the details of a 2FA error leniently (each field
// on its own); nil when there are none.
func twoFactorFrom(raw json.RawMessage) *TwoFactor {
	var d map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &d) != nil || d == nil {
		return nil
	}
	tf := &TwoFactor{}
	if s, ok := rawString(d["method"]); ok {
		tf.Method = cleanText(s, 32)
	}
	if s, ok := rawString(d["emailOrUsername"]); ok {
		tf.EmailOrUsername = cleanText(s, 256)
	}
	_ = json.Unmarshal(d["codeGenerated"], &tf.CodeGenerated)
	var avail []json.RawMessage
	if json.Unmarshal(d["availableMethods"], &avail) == nil {
		for _, a := range avail {
			if s, ok := rawString(a); ok && len(tf.Available) < 8 {
				tf.Available = append(tf.Available, cleanText(s, 32))
			}
		}
	}
	return tf
}

// IsTwoFactorRequired reports a totp-required refusal: the user name and
// password were right and Rocket.Chat wants the person's 2FA code (with
// method email it has just e-mailed one, or e-mailed one earlier). tf is
// non-nil when it is true.
func IsTwoFactorRequired(err error) (tf *TwoFactor, ok bool) {
	return twoFactorError(err, "totp-required")
}

// IsTwoFactorInvalid reports a totp-invalid refusal: the password was
// right, the 2FA code wrong, expired or already used. tf is non-nil when
// it is true.
func IsTwoFactorInvalid(err error) (tf *TwoFactor, ok bool) {
	return twoFactorError(err, "totp-invalid")
}

func twoFactorError(err error, typ string) (*TwoFactor, bool) {
	e, ok := asError(err)
	if !ok || e.ErrorType != typ {
		return nil, false
	}
	if e.TwoFactor == nil {
		return &TwoFactor{}, true
	}
	return e.TwoFactor, true
}

// IsUserDeactivated reports a login refused because the Rocket.Chat user
// is deactivated (error-user-is-not-activated, validateLoginAttempt).
func IsUserDeactivated(err error) bool {
	e, ok := asError(err)
	return ok && e.ErrorType == "error-user-is-not-activated"
}

// IsLoginBlocked reports a login refused by Rocket.Chat's failed-login
// blocking (Block_Multiple_Failed_Logins_*): error-login-blocked-for-user
// or error-login-blocked-for-ip.
func IsLoginBlocked(err error) bool {
	e, ok := asError(err)
	return ok && strings.HasPrefix(e.ErrorType, "error-login-blocked-for-")
}

// IsUndisclosedLoginRefusal reports a REST /api/v1/login refusal that does
// not say why: from 8.0 Rocket.Chat answers every refused login 401
// {"success":false,"error":"unauthorized"} — wrong password,
// totp-required and a deactivated user alike (RocketChat/Rocket.Chat
// apps/meteor/app/api/server/ApiClass.ts
// @e543389350e0c84edfc0b63f06903b13a694f4c4: the reason is added only
// `if (!applyBreakingChanges)`).
func IsUndisclosedLoginRefusal(err error) bool {
	e, ok := asError(err)
	return ok && e.Endpoint == "login" && e.Status == http.StatusUnauthorized && e.ErrorType == "unauthorized" && e.TwoFactor == nil
}

// IsBadCredentials reports a login refused for its user name or password
// (Rocket.Chat does not say which): "User not found" with Meteor code 401
// (7.0+) or 403, "Incorrect password", REST's "Unauthorized". Not for
// 2FA, deactivated, blocked or rate-limited refusals.
func IsBadCredentials(err error) bool {
	e, ok := asError(err)
	if !ok || e.Endpoint != "login" || e.Status == 0 {
		return false
	}
	switch e.ErrorType {
	case "Unauthorized":
		return true
	case "":
		return e.code == http.StatusUnauthorized || e.code == http.StatusForbidden
	}
	return false
}

// methodCallAnonPath is Rocket.Chat's DDP over REST for logged-out callers.
const methodCallAnonPath = "/api/v1/method.callAnon/login"

// LoginPerson logs a person in with their own Rocket.Chat user name (or
// e-mail address: a value with '@') and password, plus their 2FA code when
// Rocket.Chat asked for one (code "" sends none), and returns their new
// resume token. The password leaves rcsso only as its SHA-256 digest.
//
// It calls Meteor's login method the way Rocket.Chat's own web client does
// (DDP over REST): POST /api/v1/method.callAnon/login
// {"message": "{\"msg\":\"method\",\"id\":…,\"method\":\"login\",\"params\":[…]}"}
// with params [{user:{username|email}, password:{digest, algorithm:"sha-256"}}]
// or, with a code, [{totp:{login:{…}, code}}] (RocketChat/Rocket.Chat
// apps/meteor/client/meteor/overrides/ddpOverREST.ts
// @cb7d638b0e4bcffcdf45dfa25bb79024a59b873d, overrides/login/password.ts
// @1285f8921a5107e3b06adca70931069e86a33479; the route:
// apps/meteor/app/api/server/v1/misc.ts
// @8483c50595dea92301e3a13efcbca0aac09fc72d). Rocket.Chat answers 200
// {"message": "<DDP result>"} whose error is the whole Meteor.Error, on
// every version — unlike REST /api/v1/login, which from 8.0 hides why it
// refused (IsUndisclosedLoginRefusal). When the route is missing (404 or
// 405) it falls back to REST POST /api/v1/login {user, password, code}.
//
// Limits: the login method is limited by Meteor's DDPRateLimiter to 5 calls
// per 10 s per connection, which for method.callAnon is the caller's
// address and User-Agent — one bucket for all of rcsso; the REST fallback
// by the REST limiter (10/min per address, paced by Options.Budget). Never
// retried.
//
// Errors (*Error, Endpoint "login"; a refusal inside a DDP result keeps
// Status 200): IsBadCredentials, IsTwoFactorRequired (TwoFactor set),
// IsTwoFactorInvalid, IsUserDeactivated, IsLoginBlocked, IsRateLimited
// (RetryAfter from the limiter's timeToReset), IsUndisclosedLoginRefusal
// (REST fallback on 8.x), IsUnavailable. The password, its digest and the
// code never appear in errors or logs.
func (c *Client) LoginPerson(ctx context.Context, user, password, code string) (LoginResult, error) {
	const ep = "login"
	if user == "" || password == "" {
		return LoginResult{}, invalidArg(ep, "user and password are required")
	}
	sum := sha256.Sum256([]byte(password))
	digest := hex.EncodeToString(sum[:])
	secrets := []string{password, digest}
	if code != "" {
		secrets = append(secrets, code)
	}
	res, err := c.loginMethod(ctx, user, digest, code, secrets)
	if e, ok := asError(err); ok && e.Endpoint == "method.callAnon" &&
		(e.Status == http.StatusNotFound || e.Status == http.StatusMethodNotAllowed) {
		body := struct {
			User     string `json:"user"`
			Password string `json:"password"`
			Code     string `json:"code,omitempty"`
		}{user, password, code}
		return c.loginREST(ctx, body, secrets)
	}
	return res, err
}

// loginMethod is the DDP-over-REST login.
func (c *Client) loginMethod(ctx context.Context, user, digest, code string, secrets []string) (LoginResult, error) {
	q := map[string]string{"username": user}
	if strings.Contains(user, "@") {
		q = map[string]string{"email": user}
	}
	login := map[string]any{"user": q, "password": map[string]string{"digest": digest, "algorithm": "sha-256"}}
	param := any(login)
	if code != "" {
		param = map[string]any{"totp": map[string]any{"login": login, "code": code}}
	}
	msg, err := json.Marshal(map[string]any{"msg": "method", "id": "1", "method": "login", "params": []any{param}})
	if err != nil {
		return LoginResult{}, &Error{Endpoint: "login", Message: "encode request body", Err: err}
	}
	var out struct {
		Message string `json:"message"`
	}
	if err := c.do(ctx, call{method: http.MethodPost, endpoint: "method.callAnon", path: methodCallAnonPath,
		body: map[string]string{"message": string(msg)}, secrets: secrets}, &out); err != nil {
		return LoginResult{}, err
	}
	return decodeLoginResult([]byte(out.Message), c.now())
}

// decodeLoginResult reads the DDP result message of the login method:
// {"msg":"result","id":…,"result":{"id","token","tokenExpires","type"}} or
// {"msg":"result","id":…,"error":{"error","reason","details","message"}}.
// It never panics, whatever the input; its errors are *Error with Endpoint
// "login" and Status 200.
func decodeLoginResult(msg []byte, now time.Time) (LoginResult, error) {
	var m struct {
		Msg    string          `json:"msg"`
		Error  json.RawMessage `json:"error"`
		Result *struct {
			ID    string `json:"id"`
			Token string `json:"token"`
		} `json:"result"`
	}
	if err := json.Unmarshal(msg, &m); err != nil || m.Msg != "result" {
		return LoginResult{}, badResponse("login", "method.callAnon answered no DDP result message")
	}
	if len(m.Error) > 0 && string(m.Error) != "null" {
		env, _ := json.Marshal(map[string]json.RawMessage{"error": m.Error})
		return LoginResult{}, decodeError("login", http.StatusOK, http.Header{}, env, now)
	}
	if m.Result == nil || m.Result.ID == "" || m.Result.Token == "" {
		return LoginResult{}, badResponse("login", "login result has no id or token")
	}
	return LoginResult{UserID: m.Result.ID, AuthToken: m.Result.Token}, nil
}

// loginREST is POST /api/v1/login for LoginPerson's fallback: like login,
// with the code in the body (Rocket.Chat wraps it as {totp:{login, code}}).
func (c *Client) loginREST(ctx context.Context, body any, secrets []string) (LoginResult, error) {
	const ep = "login"
	var out struct {
		Data LoginResult `json:"data"`
	}
	err := c.do(ctx, call{method: http.MethodPost, endpoint: ep, path: "/api/v1/login",
		body: body, secrets: secrets, paced: true}, &out)
	if err != nil {
		return LoginResult{}, err
	}
	if out.Data.UserID == "" || out.Data.AuthToken == "" {
		return LoginResult{}, badResponse(ep, "response has no data.userId or data.authToken")
	}
	return out.Data, nil
}

// SendEmailCode asks Rocket.Chat to e-mail a new 2FA code to the person
// (emailOrUsername as TwoFactor.EmailOrUsername gives it), for a login that
// got totp-required with method email.
//
// POST /api/v1/users.2fa.sendEmailCode {"emailOrUsername":…}
// (unauthenticated; authentication.yaml /api/v1/users.2fa.sendEmailCode;
// RocketChat/Rocket.Chat apps/meteor/app/api/server/v1/users.ts
// @7bf6c349d9e7d542db0f1ce137c9427b9f4e771d). 200 {"success":true}, also
// for an unknown user on current versions (older ones: 400
// error-invalid-user). Rate limited by the REST limiter (paced by
// Options.Budget). Never retried. Errors: *Error; IsRateLimited.
func (c *Client) SendEmailCode(ctx context.Context, emailOrUsername string) error {
	const ep = "users.2fa.sendEmailCode"
	if emailOrUsername == "" {
		return invalidArg(ep, "emailOrUsername is required")
	}
	body := struct {
		EmailOrUsername string `json:"emailOrUsername"`
	}{emailOrUsername}
	return c.do(ctx, call{method: http.MethodPost, endpoint: ep, path: "/api/v1/users.2fa.sendEmailCode", body: body, paced: true}, nil)
}
