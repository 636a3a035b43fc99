package rcemu

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

const insertOrUpdate = "insertOrUpdateUser"

// ---- documents ----

// userDoc is the user object of users.create / users.update answers
// (spec §4.5): services, importIds, e2e and inviteToken excluded.
func userDoc(u *user) map[string]any {
	m := map[string]any{
		"_id": u.id, "createdAt": isoTime(u.createdAt), "username": u.username, "type": u.typ,
		"status": u.status, "active": u.active, "roles": slices.Clone(u.roles), "name": u.name,
		"settings": settingsJSON(u.settings), "_updatedAt": isoTime(u.updatedAt),
	}
	if len(u.emails) > 0 {
		m["emails"] = emailsJSON(u.emails)
	}
	if u.requirePWChange {
		m["requirePasswordChange"] = true
	}
	addOptional(m, u)
	return m
}

func settingsJSON(s map[string]any) map[string]any {
	if s == nil {
		return map[string]any{}
	}
	return s
}

// infoDoc is the users.info user (spec §4.4): public fields for everyone;
// emails, roles, createdAt, lastLogin… for self and callers with
// view-full-other-user-info; services (password: true, resume tokens) for
// self only.
func (s *Server) infoDoc(u *user, full, self bool) map[string]any {
	m := map[string]any{
		"_id": u.id, "username": u.username, "type": u.typ, "status": u.status, "active": u.active, "utcOffset": 0,
	}
	if u.name != "" {
		m["name"] = u.name
	}
	addOptional(m, u)
	if full || self {
		m["emails"] = emailsJSON(u.emails)
		m["roles"] = slices.Clone(u.roles)
		m["createdAt"] = isoTime(u.createdAt)
		m["statusConnection"] = "offline"
		m["requirePasswordChange"] = u.requirePWChange
		if !u.lastLogin.IsZero() {
			m["lastLogin"] = isoTime(u.lastLogin)
		}
	}
	if self {
		tokens := []any{}
		for _, t := range u.tokens {
			if t.pat {
				tokens = append(tokens, map[string]any{"hashedToken": t.hashedToken, "type": "personalAccessToken",
					"createdAt": isoTime(t.createdAt), "lastTokenPart": t.lastTokenPart, "name": t.name,
					"bypassTwoFactor": t.bypassTwoFactor})
			} else {
				tokens = append(tokens, map[string]any{"when": isoTime(t.when), "hashedToken": t.hashedToken})
			}
		}
		services := map[string]any{"resume": map[string]any{"loginTokens": tokens}}
		if u.bcrypt != nil {
			services["password"] = true
		}
		if u.email2fa {
			services["email2fa"] = map[string]any{"enabled": true}
		}
		m["services"] = services
	}
	if s.profile >= profile7 {
		m["canViewAllInfo"] = full || self
	}
	return m
}

// ---- users.info ----

// handleUsersInfo is GET /api/v1/users.info (spec §4.4).
func (s *Server) handleUsersInfo(c *call) reply {
	q := map[string]any{}
	for k, v := range c.query {
		if len(v) > 0 {
			q[k] = v[0]
		}
	}
	extra := []prop{{name: "fields", kind: kString}}
	if s.profile >= profile7 {
		extra = []prop{{name: "includeUserRooms", kind: kString}}
	}
	var errs []string
	matched := false
	for _, key := range []string{"userId", "username", "importId"} {
		sc := &schema{props: append([]prop{{name: key, kind: kString}}, extra...), required: []string{key}}
		msg := sc.validate(maps.Clone(q))
		if msg == "" {
			matched = true
			break
		}
		errs = append(errs, msg)
	}
	if !matched {
		return invalidParams(strings.Join(append(errs, "must match a schema in anyOf"), "\n "))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var u *user
	switch {
	case str(q, "userId") != "":
		// findOneByIdOrUsername: exact match on _id or username.
		id := str(q, "userId")
		if u = s.st.users[id]; u == nil {
			u = s.st.byUsernameExact(id)
		}
	case str(q, "username") != "":
		name := str(q, "username")
		if u = s.st.byUsernameExact(name); u == nil {
			u = s.st.users[name]
		}
	case str(q, "importId") != "":
		// importIds can only be set by importers; none exist here.
	default:
		return failure("Invalid search query.")
	}
	if u == nil {
		return failure("User not found.")
	}
	caller := s.st.users[c.userID]
	doc := s.infoDoc(u, s.hasPermission(caller, "view-full-other-user-info"), caller != nil && caller.id == u.id)
	if str(q, "includeUserRooms") == "true" {
		doc["rooms"] = []any{}
	}
	return success(map[string]any{"user": doc})
}

// ---- users.list ----

// handleUsersList is GET /api/v1/users.list (permission view-d-room):
// {users, count, offset, total, success}, sorted by username. The
// deprecated ?query= (equality on _id, username, name, active,
// emails.address) is honoured on 6.x only; 7.0 ignores it unless
// ALLOW_UNSAFE_QUERY_AND_FIELDS_API_PARAMS is set.
func (s *Server) handleUsersList(c *call) reply {
	var filter map[string]any
	if q := c.query.Get("query"); q != "" && s.profile < profile7 {
		if err := json.Unmarshal([]byte(q), &filter); err != nil {
			return meteorFailure("error-invalid-query", "Invalid query parameter provided: `"+q+"`", nil)
		}
	}
	offset, count := c.pagination()
	s.mu.Lock()
	defer s.mu.Unlock()
	full := s.hasPermission(s.st.users[c.userID], "view-full-other-user-info")
	var all []*user
	for _, id := range s.st.order {
		if u := s.st.users[id]; matchesQuery(u, filter) {
			all = append(all, u)
		}
	}
	slices.SortStableFunc(all, func(a, b *user) int { return strings.Compare(a.username, b.username) })
	total := len(all)
	list := []any{}
	for _, u := range page(all, offset, count) {
		m := map[string]any{"_id": u.id, "username": u.username, "type": u.typ, "status": u.status,
			"active": u.active, "roles": slices.Clone(u.roles), "nameInsensitive": strings.ToLower(u.name)}
		if u.name != "" {
			m["name"] = u.name
		}
		if full {
			m["emails"] = emailsJSON(u.emails)
			m["createdAt"] = isoTime(u.createdAt)
			if !u.lastLogin.IsZero() {
				m["lastLogin"] = isoTime(u.lastLogin)
			}
		}
		list = append(list, m)
	}
	return success(map[string]any{"users": list, "count": len(list), "offset": offset, "total": total})
}

func matchesQuery(u *user, q map[string]any) bool {
	for k, want := range q {
		switch k {
		case "_id":
			if want != u.id {
				return false
			}
		case "username":
			if want != u.username {
				return false
			}
		case "name":
			if want != u.name {
				return false
			}
		case "active":
			if want != u.active {
				return false
			}
		case "emails.address":
			found := false
			for _, e := range u.emails {
				found = found || want == e.Address
			}
			if !found {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// ---- users.create ----

func (s *Server) createSchema() *schema {
	props := []prop{
		{name: "email", kind: kString}, {name: "name", kind: kString}, {name: "password", kind: kString},
		{name: "username", kind: kString}, {name: "active", kind: kBool}, {name: "bio", kind: kString},
		{name: "nickname", kind: kString}, {name: "statusText", kind: kString}, {name: "roles", kind: kStringArray},
		{name: "joinDefaultChannels", kind: kBool}, {name: "requirePasswordChange", kind: kBool},
		{name: "setRandomPassword", kind: kBool}, {name: "sendWelcomeEmail", kind: kBool},
		{name: "verified", kind: kBool}, {name: "customFields", kind: kObject}, {name: "settings", kind: kObject},
	}
	if s.profile >= profile7 {
		props = append(props, prop{name: "freeSwitchExtension", kind: kString}, prop{name: "phones", kind: kArray},
			prop{name: "fields", kind: kString})
	}
	return &schema{props: props, required: []string{"email", "name", "password", "username"}}
}

// handleUsersCreate is POST /api/v1/users.create (spec §4.5). The new user
// joins the default channels unless the body says joinDefaultChannels
// false (insertUserDoc, [joinDefault] in rooms.go). Creation is
// atomic: concurrent requests for the same username (or e-mail) yield
// exactly one user.
func (s *Server) handleUsersCreate(c *call) reply {
	if msg := s.createSchema().validate(c.body); msg != "" {
		return invalidParams(msg)
	}
	b := c.body
	username := str(b, "username")
	email := strings.TrimSpace(str(b, "email"))
	password := str(b, "password")
	randomPW, _ := boolean(b, "setRandomPassword")
	var roles []string
	if rs, ok := b["roles"].([]any); ok {
		for _, r := range rs {
			roles = append(roles, r.(string))
		}
	}
	s.mu.Lock()
	if rep, ok := s.validateNewUser(c.userID, username, email, strings.TrimSpace(str(b, "name")), password, randomPW, roles); !ok {
		s.mu.Unlock()
		return rep
	}
	cost := s.cfg.BcryptCost
	defaultRoles := s.settingString("Accounts_Registration_Users_Default_Roles")
	s.mu.Unlock()

	if randomPW {
		password = randomSecret()[:17]
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(sha256Hex(password)), cost)
	if err != nil {
		return failure(err.Error())
	}
	if roles == nil {
		for _, r := range strings.Split(defaultRoles, ",") {
			if r = strings.TrimSpace(r); r != "" {
				roles = append(roles, r)
			}
		}
	}
	active := true
	if v, ok := boolean(b, "active"); ok {
		active = v
	}
	verified, _ := boolean(b, "verified")
	requirePW, _ := boolean(b, "requirePasswordChange")
	settings, _ := b["settings"].(map[string]any)
	if settings == nil {
		settings = map[string]any{}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	// Re-check uniqueness: another request may have won while hashing.
	if rep, ok := s.checkAvailable(username, email, ""); !ok {
		return rep
	}
	now := c.now
	u := &user{
		id: randomID(), username: username, name: strings.TrimSpace(str(b, "name")), typ: "user",
		status: "offline", active: active, roles: roles, createdAt: now, updatedAt: now, bcrypt: hash,
		requirePWChange: requirePW, bio: str(b, "bio"), nickname: str(b, "nickname"),
		statusText: str(b, "statusText"), settings: settings, email2fa: s.cfg.TwoFactor,
	}
	if email != "" {
		u.emails = []Email{{Address: email, Verified: verified}}
	}
	s.st.insert(u)
	if join, ok := boolean(b, "joinDefaultChannels"); join || !ok {
		s.joinDefaultChannels(u, now)
	}
	return success(map[string]any{"user": userDoc(u)})
}

// validateNewUser is validateUserData + saveNewUser's checks in
// Rocket.Chat's order (spec §4.5); s.mu must be held.
func (s *Server) validateNewUser(callerID, username, email, name, password string, randomPW bool, roles []string) (reply, bool) {
	caller := s.st.users[callerID]
	if !s.hasPermission(caller, "create-user") {
		return meteorFailure("error-action-not-allowed", "Adding user is not allowed",
			map[string]any{"method": insertOrUpdate, "action": "Adding_user"}), false
	}
	if rep, ok := s.checkRoles(caller, roles); !ok {
		return rep, false
	}
	if s.settingBool("Accounts_RequireNameForSignUp") && name == "" {
		return meteorFailure("error-the-field-is-required", "The field Name is required",
			map[string]any{"method": insertOrUpdate, "field": "Name"}), false
	}
	if strings.TrimSpace(username) == "" {
		return meteorFailure("error-the-field-is-required", "The field Username is required",
			map[string]any{"method": insertOrUpdate, "field": "Username"}), false
	}
	if rep, ok := s.checkUsernameValid(username); !ok {
		return rep, false
	}
	if password == "" && !randomPW {
		return meteorFailure("error-the-field-is-required", "The field Password is required",
			map[string]any{"method": insertOrUpdate, "field": "Password"}), false
	}
	if s.usernameBlocked(username) {
		return meteorFailure("error-blocked-username", escapeHTML(username)+" is blocked and can't be used!",
			map[string]any{"method": insertOrUpdate, "field": username}), false
	}
	if rep, ok := s.checkAvailable(username, email, ""); !ok {
		return rep, false
	}
	if email != "" && !emailRe.MatchString(email) {
		return meteorFailure("error-invalid-email", "Invalid email "+escapeHTML(email),
			map[string]any{"function": "RocketChat.validateEmailDomain", "email": email}), false
	}
	return reply{}, true
}

var emailRe = regexp.MustCompile(`^[^\s@]+@[^\s@]+\.[^\s@]+$`)

func (s *Server) checkRoles(caller *user, roles []string) (reply, bool) {
	for _, r := range roles {
		// validateUserData: roles are role _ids (getRoleIds).
		if !s.roleExists(r) {
			return meteorFailure("error-action-not-allowed", "The field Roles consist invalid role name/id",
				map[string]any{"method": insertOrUpdate, "action": "Assign_role"}), false
		}
	}
	if slices.Contains(roles, "admin") && !s.hasPermission(caller, "assign-admin-role") {
		return meteorFailure("error-action-not-allowed", "Assigning admin is not allowed",
			map[string]any{"method": insertOrUpdate, "action": "Assign_admin"}), false
	}
	return reply{}, true
}

func (s *Server) checkUsernameValid(username string) (reply, bool) {
	re, err := regexp.Compile("^(?:" + s.settingString("UTF8_User_Names_Validation") + ")$")
	if err != nil {
		re = defaultUsernameRe
	}
	if !re.MatchString(username) {
		return meteorFailure("error-input-is-not-a-valid-field", escapeHTML(username)+" is not a valid username",
			map[string]any{"method": insertOrUpdate, "input": username, "field": "Username"}), false
	}
	return reply{}, true
}

var defaultUsernameRe = regexp.MustCompile(`^[0-9a-zA-Z\-_.]+$`)

// checkAvailable reports case-insensitive username / e-mail collisions
// (error-field-unavailable); s.mu must be held.
func (s *Server) checkAvailable(username, email, exceptID string) (reply, bool) {
	if username != "" && s.st.usernameTaken(username, exceptID) {
		return meteorFailure("error-field-unavailable", escapeHTML(username)+" is already in use :(",
			map[string]any{"method": insertOrUpdate, "field": username}), false
	}
	if email != "" && s.st.emailTaken(email, exceptID) {
		return meteorFailure("error-field-unavailable", escapeHTML(email)+" is already in use :(",
			map[string]any{"method": insertOrUpdate, "field": email}), false
	}
	return reply{}, true
}

// usernameBlocked: built-in all/here, Accounts_BlockedUsernameList and
// Accounts_SystemBlockedUsernameList, case-insensitive; s.mu must be held.
func (s *Server) usernameBlocked(username string) bool {
	l := strings.ToLower(username)
	if l == "all" || l == "here" {
		return true
	}
	for _, key := range []string{"Accounts_BlockedUsernameList", "Accounts_SystemBlockedUsernameList"} {
		for _, b := range strings.Split(s.settingString(key), ",") {
			if strings.ToLower(strings.TrimSpace(b)) == l {
				return true
			}
		}
	}
	return false
}

// escapeHTML is lodash's _.escape, which Rocket.Chat applies to names in
// error messages.
func escapeHTML(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&#39;").Replace(s)
}

// ---- users.update ----

func (s *Server) updateSchema() *schema {
	data := []prop{
		{name: "email", kind: kString}, {name: "name", kind: kString}, {name: "password", kind: kString},
		{name: "username", kind: kString}, {name: "bio", kind: kString}, {name: "nickname", kind: kString},
		{name: "statusText", kind: kString}, {name: "active", kind: kBool}, {name: "roles", kind: kStringArray},
		{name: "requirePasswordChange", kind: kBool}, {name: "setRandomPassword", kind: kBool},
		{name: "sendWelcomeEmail", kind: kBool}, {name: "verified", kind: kBool},
		{name: "customFields", kind: kObject}, {name: "status", kind: kString}, {name: "settings", kind: kObject},
		{name: "language", kind: kString},
	}
	if s.profile >= profile7 {
		data = append(data, prop{name: "freeSwitchExtension", kind: kString})
	} else {
		data = append(data, prop{name: "joinDefaultChannels", kind: kBool})
	}
	return &schema{
		props: []prop{
			{name: "userId", kind: kString, minLen: 1},
			{name: "data", kind: kObject, nested: &schema{props: data}},
			{name: "confirmRelinquish", kind: kBool},
		},
		required: []string{"userId", "data"},
	}
}

// handleUsersUpdate is POST /api/v1/users.update (spec §4.6).
func (s *Server) handleUsersUpdate(c *call) reply {
	if msg := s.updateSchema().validate(c.body); msg != "" {
		return invalidParams(msg)
	}
	targetID := str(c.body, "userId")
	data := c.body["data"].(map[string]any)
	_, hasPW := data["password"]
	password := str(data, "password")
	if random, _ := boolean(data, "setRandomPassword"); random {
		password, hasPW = randomSecret()[:17], true
	}
	var hash []byte
	if hasPW && password != "" {
		var err error
		if hash, err = bcrypt.GenerateFromPassword([]byte(sha256Hex(strings.TrimSpace(password))), s.cfg.BcryptCost); err != nil {
			return failure(err.Error())
		}
	}
	var roles []string
	rs, hasRoles := data["roles"].([]any)
	for _, r := range rs {
		roles = append(roles, r.(string))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	caller := s.st.users[c.userID]
	self := targetID == c.userID
	editOther := s.hasPermission(caller, "edit-other-user-info")
	action := func(reason, act string) reply {
		return meteorFailure("error-action-not-allowed", reason, map[string]any{"method": insertOrUpdate, "action": act})
	}
	if _, ok := data["verified"]; ok && self {
		return action("Editing email verification is not allowed", "Editing_user")
	}
	if !self && !editOther {
		return action("Editing user is not allowed", "Editing_user")
	}
	if rep, ok := s.checkRoles(caller, roles); !ok {
		return rep
	}
	newUsername, hasUsername := data["username"].(string)
	if hasUsername && newUsername != "" {
		if rep, ok := s.checkUsernameValid(newUsername); !ok {
			return rep
		}
	}
	u := s.st.users[targetID]
	if u == nil {
		return meteorFailure("error-invalid-user", "Invalid user", map[string]any{"method": insertOrUpdate})
	}
	// validateUserEditing: the Accounts_Allow*Change settings bind users
	// without edit-other-user-info.
	if !editOther {
		checks := []struct{ key, setting, reason string }{
			{"username", "Accounts_AllowUsernameChange", "Edit username is not allowed"},
			{"name", "Accounts_AllowRealNameChange", "Edit user real name is not allowed"},
			{"email", "Accounts_AllowEmailChange", "Edit user email is not allowed"},
			{"password", "Accounts_AllowPasswordChange", "Edit user password is not allowed"},
		}
		for _, ch := range checks {
			if _, ok := data[ch.key]; ok && !s.settingBool(ch.setting) {
				return action(ch.reason, "Update_user")
			}
		}
	}
	if hasPW && !self && !s.hasPermission(caller, "edit-other-user-password") {
		return action("Editing user is not allowed", "Editing_user")
	}
	if hasRoles && !s.hasPermission(caller, "assign-roles") {
		return action("Assign roles is not allowed", "Assign_role")
	}
	if _, ok := data["active"]; ok && !s.hasPermission(caller, "edit-other-user-active-status") {
		return s.refusal("error-not-allowed", "Not allowed", map[string]any{"method": "setUserActiveStatus"})
	}
	if bio := str(data, "bio"); utf8.RuneCountInString(bio) > 260 {
		return meteorFailure("error-bio-size-exceeded", "Bio size exceeds 260 characters", map[string]any{"method": "saveUserProfile"})
	}
	if nick := str(data, "nickname"); utf8.RuneCountInString(nick) > 120 {
		return meteorFailure("error-nickname-size-exceeded", "Nickname size exceeds 120 characters", map[string]any{"method": "saveUserProfile"})
	}
	newEmail, hasEmail := data["email"].(string)
	newEmail = strings.TrimSpace(newEmail)
	if hasUsername && newUsername != "" && s.usernameBlocked(newUsername) && !strings.EqualFold(newUsername, u.username) {
		return meteorFailure("error-blocked-username", escapeHTML(newUsername)+" is blocked and can't be used!",
			map[string]any{"method": insertOrUpdate, "field": newUsername})
	}
	un, em := "", ""
	if hasUsername && newUsername != "" {
		un = newUsername
	}
	if hasEmail && newEmail != "" {
		em = newEmail
		if !emailRe.MatchString(em) {
			return meteorFailure("error-invalid-email", "Invalid email "+escapeHTML(em),
				map[string]any{"function": "RocketChat.validateEmailDomain", "email": em})
		}
	}
	if rep, ok := s.checkAvailable(un, em, u.id); !ok {
		return rep
	}

	oldUsername, oldEmails := u.username, slices.Clone(u.emails)
	if un != "" {
		u.username = un
	}
	if name, ok := data["name"].(string); ok && strings.TrimSpace(name) != "" {
		u.name = strings.TrimSpace(name)
	}
	verified, hasVerified := boolean(data, "verified")
	if em != "" && (len(u.emails) == 0 || !strings.EqualFold(u.emails[0].Address, em)) {
		u.emails = []Email{{Address: em, Verified: hasVerified && verified}}
	} else if hasVerified && len(u.emails) > 0 {
		u.emails[0].Verified = verified
	}
	if hash != nil {
		u.bcrypt = hash
	}
	if hasRoles {
		u.roles = roles
	}
	if v, ok := boolean(data, "requirePasswordChange"); ok {
		u.requirePWChange = v
	}
	if v, ok := data["bio"].(string); ok {
		u.bio = v
	}
	if v, ok := data["nickname"].(string); ok {
		u.nickname = v
	}
	if v, ok := data["statusText"].(string); ok {
		u.statusText = v
	}
	if v, ok := data["settings"].(map[string]any); ok {
		u.settings = v
	}
	if v, ok := boolean(data, "active"); ok {
		s.setActive(u, v)
	}
	u.updatedAt = c.now
	s.st.reindex(u, oldUsername, oldEmails)
	return success(map[string]any{"user": userDoc(u)})
}

// setActive is setUserActiveStatus: deactivation wipes every login token,
// PATs included (spec §2.2); s.mu must be held.
func (s *Server) setActive(u *user, active bool) {
	u.active = active
	if !active {
		u.tokens = []tokenEntry{}
	}
}

// ---- users.createToken ----

// getUserFromParams resolves userId | username | user (spec §4.9); s.mu
// must be held.
func (s *Server) getUserFromParams(b map[string]any) (*user, reply, bool) {
	var u *user
	switch {
	case strings.TrimSpace(str(b, "userId")) != "":
		u = s.st.users[str(b, "userId")]
	case strings.TrimSpace(str(b, "username")) != "":
		u = s.st.findForLogin("username", str(b, "username"))
	case strings.TrimSpace(str(b, "user")) != "":
		u = s.st.findForLogin("username", str(b, "user"))
	default:
		return nil, meteorFailure("error-user-param-not-provided", `The required "userId" or "username" param was not provided`, nil), false
	}
	if u == nil {
		return nil, meteorFailure("error-invalid-user", `The required "userId" or "username" param provided does not match any users`, nil), false
	}
	return u, reply{}, true
}

// handleCreateToken is POST /api/v1/users.createToken (spec §4.7). The
// rules follow the version profile:
//
//   - 5.x–7.x: CREATE_TOKENS_FOR_USERS must be set, any secret is ignored
//     (no body validator), and a caller other than the target needs
//     user-generate-access-token (RocketChat/Rocket.Chat
//     apps/meteor/app/lib/server/methods/createToken.ts
//     @08bd686f9c5d6bc04c8f14df42a4dd3b83d3b577).
//   - 8.0–8.6: body secret == CREATE_TOKENS_FOR_USERS_SECRET and nothing
//     else: the rewrite that undeprecated the endpoint (PR #36570) dropped
//     the caller check, so anyone holding the secret mints for anyone.
//   - 8.7 (and 8.0.8): the secret plus the caller check again, restored by
//     PR #40768 (apps/meteor/server/meteor-methods/auth/createToken.ts
//     @d7c37a600f96d50224153b78e28518e95c9d04fa, generateAccessToken with
//     caller). 9.0 keeps it, still as 400 error-not-authorized (#43214 does
//     not map the prefixed code).
//
// Every refusal is 400 "Not authorized [error-not-authorized]". The new
// resume token counts against the cap.
func (s *Server) handleCreateToken(c *call) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	target, rep, ok := s.getUserFromParams(c.body)
	if !ok {
		return rep
	}
	notAuthorized := meteorFailure("error-not-authorized", "Not authorized", nil)
	callerCheck := true
	if s.profile >= profile8 {
		if s.cfg.CreateTokensSecret == "" || str(c.body, "secret") != s.cfg.CreateTokensSecret {
			return notAuthorized
		}
		callerCheck = s.profile >= profile87
	} else if !s.cfg.CreateTokensForUsers {
		return notAuthorized
	}
	if callerCheck && c.userID != target.id && !s.hasPermission(s.st.users[c.userID], "user-generate-access-token") {
		return notAuthorized
	}
	bug := s.cfg.Bug40598 && !target.hasResume
	tok := randomSecret()
	s.st.pushResume(target, tok, c.now, s.cfg.MaxResumeTokens)
	if bug {
		return failure("Cannot read properties of undefined (reading 'tokens')")
	}
	return success(map[string]any{"data": map[string]any{"userId": target.id, "authToken": tok}})
}

// ---- users.delete, users.setActiveStatus, users.logout ----

// handleUsersDelete is POST /api/v1/users.delete (permission delete-user).
func (s *Server) handleUsersDelete(c *call) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, rep, ok := s.getUserFromParams(c.body)
	if !ok {
		return rep
	}
	s.st.remove(u.id)
	return success(nil)
}

// handleSetActiveStatus is POST /api/v1/users.setActiveStatus (permission
// edit-other-user-active-status): {user:{_id, active}, success}.
func (s *Server) handleSetActiveStatus(c *call) reply {
	sc := &schema{props: []prop{{name: "userId", kind: kString}, {name: "activeStatus", kind: kBool},
		{name: "confirmRelinquish", kind: kBool}}, required: []string{"userId", "activeStatus"}}
	if msg := sc.validate(c.body); msg != "" {
		return invalidParams(msg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.users[str(c.body, "userId")]
	if u == nil {
		return meteorFailure("error-invalid-user", "Invalid user", map[string]any{"method": "setUserActiveStatus"})
	}
	active, _ := boolean(c.body, "activeStatus")
	s.setActive(u, active)
	u.updatedAt = c.now
	return success(map[string]any{"user": map[string]any{"_id": u.id, "active": u.active}})
}

// handleUsersLogout is POST /api/v1/users.logout {userId?} (spec §4.11):
// services.resume.loginTokens = [] — every session and every PAT.
func (s *Server) handleUsersLogout(c *call) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := str(c.body, "userId")
	if id == "" {
		id = c.userID
	}
	if id != c.userID && !s.hasPermission(s.st.users[c.userID], "logout-other-user") {
		return s.forbidden()
	}
	u := s.st.users[id]
	if u == nil {
		return meteorFailure("error-invalid-user-id", "Invalid user id", nil)
	}
	u.tokens = []tokenEntry{}
	return reply{status: http.StatusOK, body: map[string]any{"message": "User " + id + " has been logged out!", "success": true}}
}

// handleSetAvatar is POST /api/v1/users.setAvatar with a JSON body
// {avatarUrl, userId?|username?} (spec §4.8). Rocket.Chat fetches the URL;
// the emulator only checks it is an absolute http(s) URL and keeps it.
// Changing another user's avatar needs edit-other-user-avatar. The
// multipart "image" form is not emulated.
func (s *Server) handleSetAvatar(c *call) reply {
	sc := &schema{props: []prop{{name: "avatarUrl", kind: kString}, {name: "userId", kind: kString}, {name: "username", kind: kString}}}
	if msg := sc.validate(c.body); msg != "" {
		return invalidParams(msg)
	}
	raw := str(c.body, "avatarUrl")
	if raw == "" {
		return failure("The 'image' param is required")
	}
	if u, err := url.Parse(raw); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return meteorFailure("error-avatar-invalid-url", "Invalid avatar URL: "+raw, map[string]any{"method": "setAvatarFromService"})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	caller := s.st.users[c.userID]
	target := caller
	if id := str(c.body, "userId"); id != "" {
		target = s.st.users[id]
	} else if name := str(c.body, "username"); name != "" {
		target = s.st.byUsernameExact(name)
	}
	if target == nil {
		return meteorFailure("error-invalid-user", "Invalid user", map[string]any{"method": "users.setAvatar"})
	}
	if target != caller && !s.hasPermission(caller, "edit-other-user-avatar") {
		return s.refusal("error-not-allowed", "Change avatar is not allowed", map[string]any{"method": "users.setAvatar"})
	}
	target.avatarURL = raw
	target.updatedAt = c.now
	return success(map[string]any{})
}
