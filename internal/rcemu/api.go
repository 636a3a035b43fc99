package rcemu

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// route describes one /api/v1 endpoint like Rocket.Chat's API.v1.addRoute.
type route struct {
	methods     map[string]handlerFunc
	auth        bool     // authRequired
	noRateLimit bool     // rateLimiterOptions: false
	permissions []string // permissionsRequired (route level, any of)
	// methodPermissions is permissionsRequired per method ({GET: …,
	// POST: …}), in addition to permissions.
	methodPermissions map[string][]string
	twoFactor         bool     // twoFactorRequired (only with Config.TwoFactor)
	twoFactorMethods  []string // when set, twoFactor applies to these methods only
	count             func(*Stats)
}

type handlerFunc func(c *call) reply

// call is one REST request in flight.
type call struct {
	s     *Server
	r     *http.Request
	name  string
	param string // the :_id of a route with a path parameter ("settings/:_id")
	query url.Values
	body  map[string]any
	now   time.Time

	// Set when the route authenticates the caller (spec §4.0).
	userID    string
	tokenHash string
	token     tokenEntry
}

// reply is a REST answer: status code and JSON body.
type reply struct {
	status  int
	body    any
	headers map[string]string
}

func success(body map[string]any) reply {
	if body == nil {
		body = map[string]any{}
	}
	body["success"] = true
	return reply{status: http.StatusOK, body: body}
}

// failure is API.v1.failure with a plain string (no errorType; spec §4.0).
func failure(msg string) reply {
	return reply{status: http.StatusBadRequest, body: map[string]any{"success": false, "error": msg}}
}

// meteorMessage formats a Meteor.Error message: "<reason> [<error>]".
func meteorMessage(code any, reason string) string {
	c := ""
	switch v := code.(type) {
	case string:
		c = v
	case int:
		c = strconv.Itoa(v)
	}
	if reason == "" {
		return "[" + c + "]"
	}
	return reason + " [" + c + "]"
}

// meteorFailure is API.v1.failure for a thrown Meteor.Error: 400
// {success:false, error:"<reason> [<code>]", errorType:<code>, details?}.
func meteorFailure(code, reason string, details map[string]any) reply {
	body := map[string]any{"success": false, "error": meteorMessage(code, reason), "errorType": code}
	if details != nil {
		body["details"] = details
	}
	return reply{status: http.StatusBadRequest, body: body}
}

// refusal is API.v1.failure for a thrown Meteor.Error that refuses an
// action. Up to 8.x it is meteorFailure's 400. From 9.0.0-rc.3 the
// codes error-not-allowed, not-allowed, not-authorized (unprefixed),
// not_authorized and no-permission become 403
// {success:false, error:"<reason> [<code>]", errorType:"error-forbidden"}:
// the original code survives only in error (RocketChat/Rocket.Chat PR
// #43214, https://github.com/RocketChat/Rocket.Chat/releases/tag/9.0.0-rc.3).
// Other codes (error-action-not-allowed, error-not-authorized) keep 400.
func (s *Server) refusal(code, reason string, details map[string]any) reply {
	switch code {
	case "error-not-allowed", "not-allowed", "not-authorized", "not_authorized", "no-permission":
		if s.profile >= profile9 {
			return reply{status: http.StatusForbidden, body: map[string]any{"success": false,
				"error": meteorMessage(code, reason), "errorType": "error-forbidden"}}
		}
	}
	return meteorFailure(code, reason, details)
}

// invalidParams is an ajv validation failure (spec §4.0).
func invalidParams(msg string) reply { return meteorFailure("invalid-params", msg, nil) }

// unauthorized is the 401 of an authRequired route without valid
// credentials, per profile (spec §4.0).
func (s *Server) unauthorized() reply {
	const msg = "You must be logged in to do this."
	switch {
	case s.profile < profile7:
		return reply{status: http.StatusUnauthorized, body: map[string]any{"status": "error", "message": msg}}
	case s.profile < profile8:
		return reply{status: http.StatusUnauthorized, body: map[string]any{"success": false, "error": msg, "status": "error", "message": msg}}
	}
	return reply{status: http.StatusUnauthorized, body: map[string]any{"success": false, "error": msg}}
}

// forbiddenRoute is the 403 of a route-level permissionsRequired check
// (spec §4.0): "[error-unauthorized]" up to 7.x, "[error-forbidden]" on 8.x.
func (s *Server) forbiddenRoute() reply {
	code := "error-unauthorized"
	if s.profile >= profile8 {
		code = "error-forbidden"
	}
	return reply{status: http.StatusForbidden, body: map[string]any{"success": false,
		"error": meteorMessage(code, "User does not have the permissions required for this action")}}
}

// forbidden is a handler-level API.v1.forbidden()/unauthorized(): 403
// "unauthorized" (8.x: "forbidden").
func (s *Server) forbidden() reply {
	msg := "unauthorized"
	if s.profile >= profile8 {
		msg = "forbidden"
	}
	return reply{status: http.StatusForbidden, body: map[string]any{"success": false, "error": msg}}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(body); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// apiRoutes lists the emulated /api/v1 endpoints.
func (s *Server) apiRoutes() map[string]*route {
	routes := s.baseRoutes()
	maps.Copy(routes, s.roomRoutes())
	if s.profile >= profile87 {
		routes["loginCode.redeem"] = &route{methods: map[string]handlerFunc{"POST": s.handleLoginCodeRedeem}}
	}
	return routes
}

func (s *Server) baseRoutes() map[string]*route {
	return map[string]*route{
		"login": {methods: map[string]handlerFunc{"POST": s.handleLogin},
			count: func(st *Stats) { st.LoginCalls++ }},
		"logout": {auth: true, methods: map[string]handlerFunc{"POST": s.handleLogout, "GET": s.handleLogout},
			count: func(st *Stats) { st.LogoutCalls++ }},
		"me": {auth: true, methods: map[string]handlerFunc{"GET": s.handleMe},
			count: func(st *Stats) { st.MeCalls++ }},
		"settings.public":     {methods: map[string]handlerFunc{"GET": s.handleSettingsPublic}},
		"settings.oauth":      {methods: map[string]handlerFunc{"GET": s.handleSettingsOAuth}},
		"permissions.listAll": {auth: true, methods: map[string]handlerFunc{"GET": s.handlePermissionsListAll}},
		"permissions.update": {auth: true, permissions: []string{"access-permissions"},
			methods: map[string]handlerFunc{"POST": s.handlePermissionsUpdate}},
		"settings/:_id": {auth: true, methodPermissions: map[string][]string{"GET": {"view-privileged-setting"}, "POST": {"edit-privileged-setting"}},
			twoFactor: true, twoFactorMethods: []string{"POST"},
			methods: map[string]handlerFunc{"GET": s.handleSettingGet, "POST": s.handleSettingPost}},
		"roles.list": {auth: true, methods: map[string]handlerFunc{"GET": s.handleRolesList}},
		"users.info": {auth: true, methods: map[string]handlerFunc{"GET": s.handleUsersInfo},
			count: func(st *Stats) { st.UsersInfoCalls++ }},
		"users.list": {auth: true, permissions: []string{"view-d-room"}, methods: map[string]handlerFunc{"GET": s.handleUsersList}},
		"users.create": {auth: true, methods: map[string]handlerFunc{"POST": s.handleUsersCreate},
			count: func(st *Stats) { st.UsersCreateCalls++ }},
		"users.update": {auth: true, twoFactor: true, methods: map[string]handlerFunc{"POST": s.handleUsersUpdate},
			count: func(st *Stats) { st.UsersUpdateCalls++ }},
		"users.createToken": {auth: true, methods: map[string]handlerFunc{"POST": s.handleCreateToken},
			count: func(st *Stats) { st.CreateTokenCalls++ }},
		"users.delete":          {auth: true, permissions: []string{"delete-user"}, methods: map[string]handlerFunc{"POST": s.handleUsersDelete}},
		"users.setActiveStatus": {auth: true, permissions: []string{"edit-other-user-active-status"}, methods: map[string]handlerFunc{"POST": s.handleSetActiveStatus}},
		"users.logout":          {auth: true, methods: map[string]handlerFunc{"POST": s.handleUsersLogout}},
		"users.setAvatar": {auth: true, methods: map[string]handlerFunc{"POST": s.handleSetAvatar},
			count: func(st *Stats) { st.SetAvatarCalls++ }},
		"users.2fa.sendEmailCode": {methods: map[string]handlerFunc{"POST": s.handleSendEmailCode}},
		// DDP over REST for logged-out visitors (methodcall.go): no REST
		// rate limit, Meteor's DDPRateLimiter instead.
		"method.callAnon/:method": {noRateLimit: true, methods: map[string]handlerFunc{"POST": s.handleMethodCallAnon}},
	}
}

// serveAPI runs the Rocket.Chat route pipeline: authentication (401), rate
// limiter (429), route permissions (403), 2FA, then the handler.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/api/v1/")
	var param string
	if isMethodCallAnon(name) {
		name = "method.callAnon/:method"
	}
	rt, ok := s.routes[name]
	if !ok {
		// Routes with a path parameter, e.g. "settings/:_id".
		if prefix, p, cut := strings.Cut(name, "/"); cut && p != "" && !strings.Contains(p, "/") {
			if rt, ok = s.routes[prefix+"/:_id"]; ok {
				name, param = prefix+"/:_id", p
			}
		}
	}
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "error": "API endpoint does not exist"})
		return
	}
	h, ok := rt.methods[r.Method]
	if !ok {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"success": false, "error": "Method not allowed"})
		return
	}
	s.mu.Lock()
	if rt.count != nil {
		rt.count(&s.stats)
	}
	if s.stats.Routes == nil {
		s.stats.Routes = map[string]int{}
	}
	s.stats.Routes[name]++
	s.mu.Unlock()
	c := &call{s: s, r: r, name: name, param: param, query: r.URL.Query(), body: map[string]any{}, now: s.now()}
	rep := s.runRoute(c, rt, h)
	for k, v := range rep.headers {
		w.Header().Set(k, v)
	}
	writeJSON(w, rep.status, rep.body)
}

func (s *Server) runRoute(c *call, rt *route, h handlerFunc) (rep reply) {
	var limitHeaders map[string]string
	defer func() {
		if limitHeaders != nil {
			if rep.headers == nil {
				rep.headers = map[string]string{}
			}
			for k, v := range limitHeaders {
				rep.headers[k] = v
			}
		}
	}()
	if c.r.Method == http.MethodPost || c.r.Method == http.MethodPut {
		if bad, ok := c.readBody(); !ok {
			return bad
		}
	}
	if rt.auth && !s.authenticate(c) {
		return s.unauthorized()
	}
	if !rt.noRateLimit {
		if rep, headers, limited := s.checkRateLimit(c); headers != nil {
			limitHeaders = headers
			if limited {
				return rep
			}
		}
	}
	for _, perms := range [][]string{rt.permissions, rt.methodPermissions[c.r.Method]} {
		if len(perms) == 0 {
			continue
		}
		s.mu.Lock()
		u := s.st.users[c.userID]
		allowed := false
		for _, p := range perms {
			allowed = allowed || s.hasPermission(u, p)
		}
		s.mu.Unlock()
		if !allowed {
			return s.forbiddenRoute()
		}
	}
	if rt.twoFactor && s.cfg.TwoFactor && (len(rt.twoFactorMethods) == 0 || slices.Contains(rt.twoFactorMethods, c.r.Method)) {
		if rep, ok := s.checkTwoFactor(c); !ok {
			return rep
		}
	}
	return h(c)
}

// readBody decodes a JSON object body (an empty body is {}).
func (c *call) readBody() (reply, bool) {
	data, err := io.ReadAll(io.LimitReader(c.r.Body, 1<<20))
	if err != nil {
		return failure("Could not read the request body"), false
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return reply{}, true
	}
	ct := c.r.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		vals, err := url.ParseQuery(string(data))
		if err != nil {
			return failure("Invalid form body"), false
		}
		for k := range vals {
			c.body[k] = vals.Get(k)
		}
		return reply{}, true
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return failure("Invalid JSON body: " + err.Error()), false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return invalidParams("must be object"), false
	}
	c.body = m
	return reply{}, true
}

// authenticate checks X-User-Id + X-Auth-Token against the hashed tokens
// of that user (resume tokens and PATs; spec §4.0).
func (s *Server) authenticate(c *call) bool {
	uid := c.r.Header.Get("X-User-Id")
	tok := c.r.Header.Get("X-Auth-Token")
	if uid == "" || tok == "" {
		return false
	}
	hashed := hashToken(tok)
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.users[uid]
	if u == nil {
		return false
	}
	t, ok := u.findToken(hashed)
	if !ok {
		return false
	}
	c.userID, c.tokenHash, c.token = uid, hashed, t
	return true
}

// checkRateLimit applies Rocket.Chat's API rate limiter (spec §4.14). It
// returns the headers to add when the route is limited for this caller.
func (s *Server) checkRateLimit(c *call) (reply, map[string]string, bool) {
	if s.cfg.DisableRateLimit {
		return reply{}, nil, false
	}
	s.mu.Lock()
	enabled := s.settingBool("API_Enable_Rate_Limiter")
	limit := s.settingInt("API_Enable_Rate_Limiter_Limit_Calls_Default", 10)
	interval := time.Duration(s.settingInt("API_Enable_Rate_Limiter_Limit_Time_Default", 60000)) * time.Millisecond
	bypass := c.userID != "" && s.hasPermission(s.st.users[c.userID], "api-bypass-rate-limit")
	s.mu.Unlock()
	if !enabled || bypass {
		return reply{}, nil, false
	}
	key := "/api/v1/" + c.name + strings.ToLower(c.r.Method)
	allowed, remaining, reset := s.limiter.hit(key, clientIP(c.r), c.now, limit, interval)
	headers := map[string]string{
		"X-RateLimit-Limit":     strconv.Itoa(limit),
		"X-RateLimit-Remaining": strconv.Itoa(remaining),
		"X-RateLimit-Reset":     strconv.FormatInt(c.now.Add(reset).UnixMilli(), 10),
	}
	if allowed {
		return reply{}, headers, false
	}
	s.mu.Lock()
	s.stats.RateLimited++
	s.mu.Unlock()
	secs := int(math.Ceil(reset.Seconds()))
	msg := meteorMessage("error-too-many-requests", "Error, too many requests. Please slow down. You must wait "+
		strconv.Itoa(secs)+" seconds before trying this endpoint again.")
	return reply{status: http.StatusTooManyRequests, body: map[string]any{"success": false, "error": msg}}, headers, true
}

// checkTwoFactor is twoFactorRequired (spec §4.0): bypassed by a PAT with
// bypassTwoFactor and for users created less than RememberFor seconds ago;
// otherwise x-2fa-code must be the sha256-hex of the caller's password
// (x-2fa-method: password). Users opted in to e-mail 2FA cannot pass (the
// emulator sends no e-mail).
func (s *Server) checkTwoFactor(c *call) (reply, bool) {
	s.mu.Lock()
	u := s.st.users[c.userID]
	if u == nil {
		s.mu.Unlock()
		return s.unauthorized(), false
	}
	remember := time.Duration(s.settingInt("Accounts_TwoFactorAuthentication_RememberFor", 1800)) * time.Second
	if (c.token.pat && c.token.bypassTwoFactor) || c.now.Sub(u.createdAt) < remember {
		s.mu.Unlock()
		return reply{}, true
	}
	method := "password"
	if u.email2fa && u.hasVerifiedEmail() {
		method = "email"
	}
	hash := u.bcrypt
	s.mu.Unlock()
	code := c.r.Header.Get("x-2fa-code")
	if code == "" || method != "password" || !strings.EqualFold(c.r.Header.Get("x-2fa-method"), "password") {
		return meteorFailure("totp-required", "TOTP Required", map[string]any{
			"method": method, "codeGenerated": method == "email", "availableMethods": []string{method}}), false
	}
	if hash == nil || bcrypt.CompareHashAndPassword(hash, []byte(strings.ToLower(code))) != nil {
		return meteorFailure("totp-invalid", "TOTP Invalid", map[string]any{"method": method}), false
	}
	return reply{}, true
}

// pagination reads offset/count like Rocket.Chat's getPaginationItems.
func (c *call) pagination() (offset, count int) {
	c.s.mu.Lock()
	def := c.s.settingInt("API_Default_Count", 50)
	upper := c.s.settingInt("API_Upper_Count_Limit", 100)
	c.s.mu.Unlock()
	offset, _ = strconv.Atoi(c.query.Get("offset"))
	if offset < 0 {
		offset = 0
	}
	count = def
	if v := c.query.Get("count"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			count = n
		}
	}
	if count == 0 || count > upper {
		count = upper
	}
	return offset, count
}

// ---- ajv-like validation (spec §4.0: additionalProperties:false, invalid-params) ----

type kind int

const (
	kString kind = iota
	kBool
	kStringArray
	kArray
	kObject
)

type prop struct {
	name   string
	kind   kind
	minLen int     // strings
	nested *schema // objects with a schema
}

type schema struct {
	props      []prop
	required   []string
	additional bool
}

// validate checks m like ajv (allErrors off, coerceTypes on for scalars)
// and returns the first error message, or "".
func (sc *schema) validate(m map[string]any) string {
	for _, r := range sc.required {
		if _, ok := m[r]; !ok {
			return "must have required property '" + r + "'"
		}
	}
	if !sc.additional {
		for k := range m {
			if !sc.has(k) {
				return "must NOT have additional properties"
			}
		}
	}
	for _, p := range sc.props {
		v, ok := m[p.name]
		if !ok {
			continue
		}
		nv, msg := p.check(v)
		if msg != "" {
			return msg
		}
		m[p.name] = nv
	}
	return ""
}

func (sc *schema) has(k string) bool {
	for _, p := range sc.props {
		if p.name == k {
			return true
		}
	}
	return false
}

func (p prop) check(v any) (any, string) {
	switch p.kind {
	case kString:
		switch x := v.(type) {
		case string:
			if len([]rune(x)) < p.minLen {
				return v, "must NOT have fewer than " + strconv.Itoa(p.minLen) + " characters"
			}
			return x, ""
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64), ""
		case bool:
			return strconv.FormatBool(x), ""
		case nil:
			if p.minLen > 0 {
				return v, "must NOT have fewer than " + strconv.Itoa(p.minLen) + " characters"
			}
			return "", ""
		}
		return v, "must be string"
	case kBool:
		switch x := v.(type) {
		case bool:
			return x, ""
		case string:
			if x == "true" || x == "false" {
				return x == "true", ""
			}
		case float64:
			if x == 0 || x == 1 {
				return x == 1, ""
			}
		case nil:
			return false, ""
		}
		return v, "must be boolean"
	case kStringArray:
		arr, ok := v.([]any)
		if !ok {
			return v, "must be array"
		}
		for _, e := range arr {
			if _, ok := e.(string); !ok {
				return v, "must be string"
			}
		}
		return v, ""
	case kArray:
		if _, ok := v.([]any); !ok {
			return v, "must be array"
		}
		return v, ""
	case kObject:
		m, ok := v.(map[string]any)
		if !ok {
			return v, "must be object"
		}
		if p.nested != nil {
			if msg := p.nested.validate(m); msg != "" {
				return v, msg
			}
		}
		return m, ""
	}
	return v, ""
}

// str returns a string body field ("" when absent or not a string).
func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func boolean(m map[string]any, k string) (bool, bool) {
	b, ok := m[k].(bool)
	return b, ok
}
