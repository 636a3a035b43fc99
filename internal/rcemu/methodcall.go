package rcemu

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
)

// POST /api/v1/method.callAnon/:method is "DDP over REST": Rocket.Chat's
// web client sends every Meteor method call of a logged-out visitor there
// (password logins included) instead of over the WebSocket, and reads the
// DDP result out of the answer (RocketChat/Rocket.Chat
// apps/meteor/client/meteor/overrides/ddpOverREST.ts
// @cb7d638b0e4bcffcdf45dfa25bb79024a59b873d; the password login with a
// 2FA code is {totp:{login:{user, password:{digest, algorithm}}, code}},
// apps/meteor/client/meteor/overrides/login/password.ts
// @1285f8921a5107e3b06adca70931069e86a33479).
//
// The route (apps/meteor/app/api/server/v1/misc.ts
// @8483c50595dea92301e3a13efcbca0aac09fc72d) takes {message: <EJSON of
// {msg:"method", id, method, params}>}, has no REST rate limit but counts
// the call in Meteor's DDPRateLimiter under connectionId =
// md5(client IP + User-Agent), and always answers 200
// {message: <EJSON of {msg:"result", id, result} or {msg:"result", id,
// error}>, success:true}: the Meteor.Error travels whole — error code,
// reason, details, message — unlike REST /api/v1/login on 8.x
// (loginFailure). The emulator implements the login method only; other
// methods get Meteor's 404 "Method '<name>' not found".
//
// The rate limit on login is accounts-base's default rule: 5 calls per
// 10 s per connection (meteor/meteor packages/accounts-base/accounts_server.js
// @59d35ba3b582b374e71f273f4dc7153c4d2a88aa, addDefaultRateLimit), so all
// logins that come from one address with one User-Agent share it; the 6th
// gets Meteor.Error("too-many-requests", "Error, too many requests. Please
// slow down. You must wait N seconds before trying again.", {timeToReset})
// (packages/ddp-rate-limiter/ddp-rate-limiter.js
// @c57c0564323589eed43e796364aed2cba8bcf626). Config.DisableRateLimit
// turns it off.

// Meteor's default login rate limit (accounts-base).
const (
	ddpLoginLimit    = 5
	ddpLoginInterval = 10 * time.Second
)

// ddpCall is the parsed message of a method.call(Anon) request.
type ddpCall struct {
	Msg    string `json:"msg"`
	ID     string `json:"id"`
	Method string `json:"method"`
	Params []any  `json:"params"`
}

// handleMethodCallAnon is POST /api/v1/method.callAnon/:method.
func (s *Server) handleMethodCallAnon(c *call) reply {
	raw, ok := c.body["message"].(string)
	if !ok {
		return invalidParams("must have required property 'message'")
	}
	var m ddpCall
	if err := json.Unmarshal([]byte(raw), &m); err != nil || m.Msg != "method" || m.ID == "" || m.Method == "" || m.Params == nil {
		return failure("Invalid method call")
	}
	if m.Method != "login" {
		return s.ddpResult(m.ID, nil, &meteorError{code: 404, reason: "Method '" + m.Method + "' not found"})
	}
	if !s.cfg.DisableRateLimit {
		sum := md5.Sum([]byte(clientIP(c.r) + c.r.Header.Get("User-Agent")))
		conn := hex.EncodeToString(sum[:])
		allowed, _, reset := s.limiter.hit("ddp:method:login", conn, c.now, ddpLoginLimit, ddpLoginInterval)
		if !allowed {
			s.mu.Lock()
			s.stats.RateLimited++
			s.mu.Unlock()
			ms := reset.Milliseconds()
			return s.ddpResult(m.ID, nil, &meteorError{code: "too-many-requests",
				reason:  "Error, too many requests. Please slow down. You must wait " + strconv.Itoa(int(math.Ceil(reset.Seconds()))) + " seconds before trying again.",
				details: map[string]any{"timeToReset": ms}})
		}
	}
	s.mu.Lock()
	s.stats.MethodLoginCalls++
	s.mu.Unlock()
	var args map[string]any
	if len(m.Params) > 0 {
		args, _ = m.Params[0].(map[string]any)
	}
	if args == nil {
		return s.ddpResult(m.ID, nil, errMatchFailed)
	}
	out, e := s.login(args)
	if e != nil {
		return s.ddpResult(m.ID, nil, s.maskLoginError(ddpError(e)))
	}
	days := 90
	s.mu.Lock()
	days = s.settingInt("Accounts_LoginExpiration", days)
	s.mu.Unlock()
	return s.ddpResult(m.ID, map[string]any{
		"id": out.userID, "token": out.token, "type": out.typ,
		"tokenExpires": map[string]any{"$date": out.when.Add(time.Duration(days) * 24 * time.Hour).UnixMilli()},
	}, nil)
}

// maskLoginError is Rocket.Chat's loginErrorMessageOverride: an error of
// the login handlers (unknown user, wrong or missing password) becomes
// Meteor.Error(401, "User not found") from 7.0 (PR #32086), and before it
// "Incorrect password" became Meteor.Error(403, "User not found")
// (RocketChat/Rocket.Chat apps/meteor/app/lib/server/lib/loginErrorMessageOverride.ts
// @aa405742253efb45174d6b0de3c30c0fbcbf4c1f). Errors of the 2FA hook and
// of validateLoginAttempt (error-user-is-not-activated) pass unchanged.
func (s *Server) maskLoginError(e *meteorError) *meteorError {
	switch e {
	case errUserNotFound, errBadPassword, errNoPassword:
		if s.profile >= profile7 {
			return &meteorError{code: 401, reason: "User not found"}
		}
		return &meteorError{code: 403, reason: "User not found"}
	}
	return e
}

// ddpResult is the 200 answer of method.call(Anon): the DDP result message
// as a JSON string. A Meteor.Error serializes its own fields: isClientSafe,
// error, reason, details (when set) and message.
func (s *Server) ddpResult(id string, result any, e *meteorError) reply {
	msg := map[string]any{"msg": "result", "id": id}
	if e != nil {
		em := map[string]any{"isClientSafe": true, "error": e.code, "reason": e.reason, "message": e.message()}
		if e.details != nil {
			em["details"] = e.details
		}
		msg["error"] = em
	} else {
		msg["result"] = result
	}
	b, err := json.Marshal(msg)
	if err != nil {
		return reply{status: 500, body: map[string]any{"success": false, "error": "Internal server error"}}
	}
	return success(map[string]any{"message": string(b)})
}

// isMethodCallAnon reports whether an /api/v1 path names the
// method.callAnon/:method route.
func isMethodCallAnon(name string) bool {
	return strings.HasPrefix(name, "method.callAnon/") && len(name) > len("method.callAnon/")
}
