package rcemu

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// meteorError is a thrown Meteor.Error: error code (string or number),
// reason and optional details. Its message is "<reason> [<error>]".
type meteorError struct {
	code    any
	reason  string
	details map[string]any
}

func (e *meteorError) message() string { return meteorMessage(e.code, e.reason) }

var (
	errLoggedOut    = &meteorError{code: 403, reason: "You've been logged out by the server. Please log in again."}
	errExpired      = &meteorError{code: 403, reason: "Your session has expired. Please log in again."}
	errMatchFailed  = &meteorError{code: 400, reason: "Match failed"}
	errUnrecognized = &meteorError{code: 400, reason: "Unrecognized options for login request"}
	errUserNotFound = &meteorError{code: 403, reason: "User not found"}
	errNoPassword   = &meteorError{code: 403, reason: "User has no password set"}
	errBadPassword  = &meteorError{code: 403, reason: "Incorrect password"}
	errNotActivated = &meteorError{code: "error-user-is-not-activated", reason: "User is not activated"}
	errAppUser      = &meteorError{code: "error-app-user-is-not-allowed-to-login", reason: "App user is not allowed to login"}
)

// loginOutcome is a successful Meteor login.
type loginOutcome struct {
	userID   string
	username string
	token    string
	when     time.Time
	typ      string // resume | password | iframe
}

// truthy is JavaScript truthiness for decoded JSON values.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case float64:
		return x != 0
	}
	return true
}

// login runs Meteor's login method (spec §2.1, §2.2): the registered login
// handlers in order (totp, resume, password, iframe), then Rocket.Chat's
// validateLoginAttempt (inactive users, app users) and the 2FA hook
// (twofactor.go). A resume login returns the same token; password and
// iframe logins insert a new resume token and enforce the per-user cap.
//
// The totp handler unwraps {totp:{login, code}} when code is truthy and
// runs the handlers on login; the 2FA hook then checks that code
// (RocketChat/Rocket.Chat apps/meteor/app/2fa/server/loginHandler.ts
// @77afb8ff7efe73c5d146a4de6bea58b2878e9820).
func (s *Server) login(args map[string]any) (loginOutcome, *meteorError) {
	code := ""
	if t, ok := args["totp"].(map[string]any); ok && truthy(t["code"]) {
		inner, ok := t["login"].(map[string]any)
		if !ok {
			return loginOutcome{}, errUnrecognized
		}
		code = fmt.Sprint(t["code"])
		args = inner
	}
	return s.runLoginHandlers(args, code)
}

func (s *Server) runLoginHandlers(args map[string]any, code string) (loginOutcome, *meteorError) {
	now := s.now()
	if truthy(args["resume"]) {
		tok, ok := args["resume"].(string)
		if !ok {
			return loginOutcome{}, errMatchFailed
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		u, t := s.st.byToken(hashToken(tok))
		if u == nil {
			return loginOutcome{}, errLoggedOut
		}
		days := s.settingInt("Accounts_LoginExpiration", 90)
		if !t.pat && !now.Before(t.when.Add(time.Duration(days)*24*time.Hour)) {
			return loginOutcome{}, errExpired
		}
		if e := s.validateLogin(u, "resume", ""); e != nil {
			return loginOutcome{}, e
		}
		u.lastLogin = now
		when := t.when
		if t.pat {
			when = now
		}
		return loginOutcome{userID: u.id, username: u.username, token: tok, when: when, typ: "resume"}, nil
	}
	if truthy(args["password"]) {
		return s.passwordLogin(args, code, now)
	}
	if truthy(args["accessToken"]) {
		return s.oauthLogin(args, now) // Custom OAuth access token (oauth.go)
	}
	if truthy(args["iframe"]) {
		tok, ok := args["token"].(string)
		if !ok {
			return loginOutcome{}, errMatchFailed
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if u := s.st.byIframeToken(tok); u != nil {
			if e := s.validateLogin(u, "iframe", code); e != nil {
				return loginOutcome{}, e
			}
			return s.issueToken(u, "iframe", now), nil
		}
	}
	return loginOutcome{}, errUnrecognized
}

// passwordLogin is accounts-password's handler: {user:{id|username|email},
// password: string | {digest, algorithm:"sha-256"}, code?}.
func (s *Server) passwordLogin(args map[string]any, code string, now time.Time) (loginOutcome, *meteorError) {
	for k := range args {
		if k != "user" && k != "password" && k != "code" {
			return loginOutcome{}, errMatchFailed
		}
	}
	var digest string
	switch pw := args["password"].(type) {
	case string:
		digest = sha256Hex(pw)
	case map[string]any:
		d, ok1 := pw["digest"].(string)
		alg, ok2 := pw["algorithm"].(string)
		if !ok1 || !ok2 || len(pw) != 2 {
			return loginOutcome{}, errMatchFailed
		}
		if alg != "sha-256" {
			return loginOutcome{}, &meteorError{code: 400, reason: "Invalid password hash algorithm. Only 'sha-256' is allowed."}
		}
		digest = d
	default:
		return loginOutcome{}, errMatchFailed
	}
	field, value := "", ""
	if uv, present := args["user"]; present {
		q, ok := uv.(map[string]any)
		if !ok || len(q) != 1 {
			return loginOutcome{}, errMatchFailed
		}
		for k, v := range q {
			sv, ok := v.(string)
			if !ok || sv == "" || (k != "id" && k != "username" && k != "email") {
				return loginOutcome{}, errMatchFailed
			}
			field, value = k, sv
		}
	}
	s.mu.Lock()
	u := s.st.findForLogin(field, value)
	if u == nil {
		s.mu.Unlock()
		return loginOutcome{}, errUserNotFound
	}
	id, hash := u.id, u.bcrypt
	s.mu.Unlock()
	if hash == nil {
		return loginOutcome{}, errNoPassword
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(digest)) != nil {
		return loginOutcome{}, errBadPassword
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u = s.st.users[id]
	if u == nil {
		return loginOutcome{}, errUserNotFound
	}
	if e := s.validateLogin(u, "password", code); e != nil {
		return loginOutcome{}, e
	}
	return s.issueToken(u, "password", now), nil
}

// validateLogin is Rocket.Chat's Accounts.validateLoginAttempt plus the 2FA
// login hook, which skips resume logins and checks code (twofactor.go);
// s.mu must be held.
func (s *Server) validateLogin(u *user, typ, code string) *meteorError {
	if u.typ == "app" {
		return errAppUser
	}
	if !u.active {
		return errNotActivated
	}
	if typ != "resume" {
		return s.checkLoginCode(u, code, s.now())
	}
	return nil
}

// issueToken creates a new resume token for u; s.mu must be held.
func (s *Server) issueToken(u *user, typ string, now time.Time) loginOutcome {
	tok := randomSecret()
	s.st.pushResume(u, tok, now, s.cfg.MaxResumeTokens)
	u.lastLogin = now
	return loginOutcome{userID: u.id, username: u.username, token: tok, when: now, typ: typ}
}

// loginCompatibility is Rocket.Chat's REST body mapping for /api/v1/login
// (spec §4.1): {user|username|email, password, code} becomes a Meteor
// password login, wrapped as {totp:{code, login}} when a 2FA code comes in
// the body's code or, failing that, the x-2fa-code header; anything else is
// passed through verbatim (RocketChat/Rocket.Chat
// apps/meteor/app/api/server/ApiClass.ts
// @e543389350e0c84edfc0b63f06903b13a694f4c4, _initAuth).
func loginCompatibility(body map[string]any, h http.Header) map[string]any {
	if body["password"] == nil {
		return body
	}
	for k := range body {
		switch k {
		case "user", "username", "email", "password", "code":
		default:
			return body
		}
	}
	var q map[string]any
	if u, ok := body["user"].(string); ok {
		if strings.Contains(u, "@") {
			q = map[string]any{"email": u}
		} else {
			q = map[string]any{"username": u}
		}
	} else if truthy(body["username"]) {
		q = map[string]any{"username": body["username"]}
	} else if truthy(body["email"]) {
		q = map[string]any{"email": body["email"]}
	}
	if q == nil {
		return body
	}
	auth := map[string]any{"user": q, "password": body["password"]}
	var code any = body["code"]
	if !truthy(code) && h.Get("x-2fa-code") != "" {
		code = h.Get("x-2fa-code")
	}
	if truthy(code) {
		return map[string]any{"totp": map[string]any{"code": code, "login": auth}}
	}
	return auth
}

// handleLogin is POST /api/v1/login (spec §4.1).
func (s *Server) handleLogin(c *call) reply {
	out, e := s.login(loginCompatibility(c.body, c.r.Header))
	if e != nil {
		return s.loginFailure(e)
	}
	s.mu.Lock()
	me := s.userInfo(s.st.users[out.userID], c.r)
	s.mu.Unlock()
	body := map[string]any{"status": "success", "data": map[string]any{"userId": out.userID, "authToken": out.token, "me": me}}
	if s.profile >= profile7 {
		body["success"] = true
	}
	return reply{status: http.StatusOK, body: body}
}

// loginFailure is the 401 of /api/v1/login per profile (spec §4.1):
// {status:"error", error, details?, message} on 6.x, plus success:false on
// 7.x. Unknown users and wrong passwords both read "Unauthorized". From 8.0
// on every refusal reads the same {success:false, error:"unauthorized"}:
// the route answers self.unauthorized() and adds the Meteor error's code,
// details and reason only `if (!applyBreakingChanges)`, with
// applyBreakingChanges = shouldBreakInVersion('8.0.0') (RocketChat/Rocket.Chat
// apps/meteor/app/api/server/ApiClass.ts
// @e543389350e0c84edfc0b63f06903b13a694f4c4), so a REST client of 8.x
// cannot tell a wrong password from totp-required (Rocket.Chat's own web
// client logs in through method.callAnon/login instead; methodcall.go).
// From 8.7 on, an error that is not a Meteor.Error (a plain Error such as
// "Unexpected AccessToken service …", a Match error) is 500
// {success:false, error:"Internal server error"}:
// `if (!(error instanceof Meteor.Error)) return self.internalError()`
// (RocketChat/Rocket.Chat apps/meteor/server/api/ApiClass.ts
// @0358e0dc3bd9a302e8d07bb3efad35a8eca31d8c; issue #35649 reports the 500
// for Custom OAuth token logins already on 7.5.0).
func (s *Server) loginFailure(e *meteorError) reply {
	if e.code == nil && s.profile >= profile87 {
		return reply{status: http.StatusInternalServerError, body: map[string]any{"success": false, "error": "Internal server error"}}
	}
	if s.profile >= profile8 {
		return reply{status: http.StatusUnauthorized, body: map[string]any{"success": false, "error": "unauthorized"}}
	}
	code, msg := e.code, e.reason
	if msg == errUserNotFound.reason || msg == errBadPassword.reason {
		code, msg = "Unauthorized", "Unauthorized"
	}
	body := withoutNilError(map[string]any{"status": "error", "error": code, "message": msg})
	if e.details != nil {
		body["details"] = e.details
	}
	if s.profile >= profile7 {
		body["success"] = false
	}
	return reply{status: http.StatusUnauthorized, body: body}
}

// handleLogout is /api/v1/logout (spec §4.3): removes the caller's token
// (a PAT too, when called with one).
func (s *Server) handleLogout(c *call) reply {
	s.mu.Lock()
	if u := s.st.users[c.userID]; u != nil {
		u.removeToken(c.tokenHash)
	}
	s.mu.Unlock()
	body := map[string]any{"status": "success", "data": map[string]any{"message": "You've been logged out!"}}
	if s.profile >= profile7 {
		body["success"] = true
	}
	return reply{status: http.StatusOK, body: body}
}

// handleMe is GET /api/v1/me (spec §4.2).
func (s *Server) handleMe(c *call) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.users[c.userID]
	if u == nil {
		return s.unauthorized()
	}
	return success(s.userInfo(u, c.r))
}

// defaultPreferences are the user preferences /me reports (merged with the
// user's own).
var defaultPreferences = map[string]any{
	"enableAutoAway": true, "idleTimeLimit": 300, "desktopNotificationRequireInteraction": false,
	"audioNotifications": "mentions", "desktopNotifications": "all", "pushNotifications": "all",
	"unreadAlert": true, "useEmojis": true, "convertAsciiEmoji": true, "autoImageLoad": true,
	"saveMobileBandwidth": true, "collapseMediaByDefault": false, "hideUsernames": false, "hideRoles": false,
	"hideFlexTab": false, "displayAvatars": true, "sidebarGroupByType": true, "themeAppearence": "auto",
	"sidebarViewMode": "medium", "sidebarDisplayAvatar": true, "sidebarShowUnread": false,
	"sidebarSortby": "activity", "showMessageInMainThread": false, "sidebarShowFavorites": true,
	"sendOnEnter": "normal", "messageViewMode": 0, "emailNotificationMode": "mentions",
	"newRoomNotification": "door", "newMessageNotification": "chime", "muteFocusedConversations": true,
	"notificationsSoundVolume": 100, "omnichannelTranscriptEmail": false,
}

// userInfo is Rocket.Chat's getUserInfo (the /me body and login's "me"):
// default user fields plus email (first verified), merged preferences,
// avatarUrl and services.password.exists — never the bcrypt hash. s.mu
// must be held.
func (s *Server) userInfo(u *user, r *http.Request) map[string]any {
	prefs := maps.Clone(defaultPreferences)
	if p, ok := u.settings["preferences"].(map[string]any); ok {
		maps.Copy(prefs, p)
	}
	services := map[string]any{"password": map[string]any{"exists": u.bcrypt != nil}}
	if u.email2fa {
		services["email2fa"] = map[string]any{"enabled": true}
	}
	m := map[string]any{
		"_id": u.id, "username": u.username, "emails": emailsJSON(u.emails), "status": u.status,
		"statusConnection": "offline", "utcOffset": 0, "active": u.active, "roles": slices.Clone(u.roles),
		"settings": map[string]any{"preferences": prefs}, "avatarUrl": s.siteURL(r) + "/avatar/" + u.username,
		"services": services, "requirePasswordChange": u.requirePWChange, "_updatedAt": isoTime(u.updatedAt),
	}
	if u.name != "" {
		m["name"] = u.name
	}
	for _, e := range u.emails {
		if e.Verified {
			m["email"] = e.Address
			break
		}
	}
	addOptional(m, u)
	return m
}

func addOptional(m map[string]any, u *user) {
	if u.bio != "" {
		m["bio"] = u.bio
	}
	if u.nickname != "" {
		m["nickname"] = u.nickname
	}
	if u.statusText != "" {
		m["statusText"] = u.statusText
	}
}

func emailsJSON(emails []Email) []any {
	out := make([]any, 0, len(emails))
	for _, e := range emails {
		out = append(out, map[string]any{"address": e.Address, "verified": e.Verified})
	}
	return out
}

// siteURL is the Site_Url setting, or the request's own origin; s.mu must
// be held.
func (s *Server) siteURL(r *http.Request) string {
	if u := strings.TrimRight(s.settingString("Site_Url"), "/"); u != "" {
		return u
	}
	if r == nil {
		return ""
	}
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// ---- the web client's DDP stand-ins (not rate limited) ----

// handleDDPLogin is POST /_emu/ddp-login: Meteor's "login" method as the
// web client calls it over DDP (same handlers and token effects as
// /api/v1/login, no loginCompatibility mapping, no rate limit). Success:
// 200 {id, token, tokenExpires, type, username}; failure: 400 {error,
// reason, message:"<reason> [<error>]", errorType:"Meteor.Error"}.
func (s *Server) handleDDPLogin(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.stats.DDPLoginCalls++
	days := s.settingInt("Accounts_LoginExpiration", 90)
	s.mu.Unlock()
	var args map[string]any
	data, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if json.Unmarshal(data, &args) != nil || args == nil {
		writeMeteorError(w, errMatchFailed)
		return
	}
	out, e := s.login(args)
	if e != nil {
		writeMeteorError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": out.userID, "token": out.token, "type": out.typ, "username": out.username,
		"tokenExpires": isoTime(out.when.Add(time.Duration(days) * 24 * time.Hour)),
	})
}

func writeMeteorError(w http.ResponseWriter, e *meteorError) {
	e = ddpError(e)
	body := map[string]any{"error": e.code, "message": e.message(), "errorType": "Meteor.Error"}
	if e.reason != "" { // a Meteor.Error without a reason has none in its JSON
		body["reason"] = e.reason
	}
	if e.details != nil {
		body["details"] = e.details
	}
	writeJSON(w, http.StatusBadRequest, body)
}

// handleDDPLogout is POST /_emu/ddp-logout {token}: Meteor's "logout"
// method — the connection's token is removed from its user.
func (s *Server) handleDDPLogout(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Token string `json:"token"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body)
	if body.Token != "" {
		h := hashToken(body.Token)
		s.mu.Lock()
		if u, _ := s.st.byToken(h); u != nil {
			u.removeToken(h)
		}
		s.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, map[string]any{})
}

// handleDDPSetStatus is POST /_emu/ddp-set-status {token, status}: the
// account box's status change (iframe command set-user-status, spec §3.1).
func (s *Server) handleDDPSetStatus(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Token  string `json:"token"`
		Status string `json:"status"`
	}
	_ = json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body)
	switch body.Status {
	case "online", "away", "busy", "offline":
	default:
		writeMeteorError(w, &meteorError{code: "error-invalid-status", reason: "Invalid status"})
		return
	}
	s.mu.Lock()
	u, _ := s.st.byToken(hashToken(body.Token))
	if u != nil {
		u.status = body.Status
	}
	s.mu.Unlock()
	if u == nil {
		writeMeteorError(w, &meteorError{code: "error-invalid-user", reason: "Invalid user"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": body.Status})
}
