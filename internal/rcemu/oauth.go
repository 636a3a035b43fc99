package rcemu

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OAuthService is a Custom OAuth service (Administration → OAuth → Add
// custom OAuth) as far as access-token logins use it: POST /api/v1/login
// {serviceName, accessToken, expiresIn} (Rocket.Chat's
// registerAccessTokenService in custom_oauth_server.ts).
type OAuthService struct {
	// Name is the service name (lower-case, as Rocket.Chat stores it).
	Name string
	// IdentityURL is the identity path as an absolute URL (URL + Identity
	// Path in Rocket.Chat's settings). The emulator GETs it with the
	// access token, Accept: application/json.
	IdentityURL string
	// TokenSentVia is "header" (Authorization: Bearer <token>) or
	// "payload" (the query parameter access_token); anything else is
	// "payload", like Rocket.Chat's identityTokenSentVia.
	TokenSentVia string
	// UsernameField, EmailField and NameField are dotted paths into the
	// identity JSON ("" = the normalised username, email and name
	// properties). A configured field that is missing fails the login
	// ("CustomOAuth: Failed to extract username"). Rocket.Chat creates users
	// without a username when UsernameField is empty; the emulator needs one
	// and fails such logins instead.
	UsernameField, EmailField, NameField string
	// MergeUsers is "Merge users": a login whose id no user carries yet is
	// merged into the user with the same username or e-mail
	// (case-insensitive), and an existing user's name and e-mail follow the
	// identity. Without it such logins fail ("User with username … already
	// exists" / "Username already exists.").
	MergeUsers bool

	// Builtin makes this the built-in WordPress provider instead of a
	// Custom OAuth service: Administration → Settings → OAuth → WordPress
	// (enable setting Accounts_OAuth_Wordpress, server type "custom", which
	// reads the identity, token and authorize paths from its settings).
	// Name must be "wordpress". It is a CustomOAuth instance too, so it
	// takes access-token logins, but its enable setting escapes 9.0's
	// Custom OAuth gate (RocketChat/Rocket.Chat apps/meteor/app/wordpress/server/lib.ts
	// @1abed5480eeab2181de7adfdc569868453b52212). It has no "Merge users"
	// and no username field: MergeUsers and UsernameField are ignored
	// (the identity's "username" is used).
	Builtin bool
	// ServerURL is the service's URL setting, reported by settings.oauth
	// (default: the scheme and host of IdentityURL).
	ServerURL string
	// AuthorizeURL, TokenURL, ClientID, ClientSecret and Scope serve the
	// server-side OAuth flow of 8.7 (oauthflow.go): the provider's
	// authorize and token endpoints as absolute URLs and the client
	// credentials. Scope defaults to "openid".
	AuthorizeURL, TokenURL string
	ClientID, ClientSecret string
	Scope                  string
}

// oauthClient calls identity URLs (Rocket.Chat's server-side fetch).
var oauthClient = &http.Client{Timeout: 10 * time.Second}

// plainError is a thrown JavaScript Error (not a Meteor.Error): /api/v1/login
// reports its message with no "error" code; over DDP it becomes 400 "Match
// failed" (a check() failure) or 500 "Internal server error".
func plainError(msg string) *meteorError { return &meteorError{reason: msg} }

// withoutNilError drops body["error"] when it is nil: JSON.stringify
// leaves out the undefined code of a plain Error.
func withoutNilError(body map[string]any) map[string]any {
	if body["error"] == nil {
		delete(body, "error")
	}
	return body
}

// ddpError is what a DDP client receives for e: Meteor sanitizes errors
// that are not Meteor.Errors.
func ddpError(e *meteorError) *meteorError {
	if e.code != nil {
		return e
	}
	if strings.HasPrefix(e.reason, "Match error") {
		return errMatchFailed
	}
	return &meteorError{code: 500, reason: "Internal server error"}
}

// oauthService returns the configured service called name if Rocket.Chat
// has it switched on: a Custom OAuth service is off on 9.0 without the
// oauth-enterprise module, a built-in one is gone under PR #41992 (see
// oauthActive).
func (s *Server) oauthService(name string) (OAuthService, bool) {
	for _, o := range s.cfg.OAuthServices {
		if o.Name == name && s.oauthActive(o) {
			return o, true
		}
	}
	return OAuthService{}, false
}

// oauthActive reports whether Rocket.Chat runs the service.
//
// 9.0.0 makes Custom OAuth a Premium feature (PR #42477,
// https://github.com/RocketChat/Rocket.Chat/releases/tag/9.0.0): every
// boolean setting matching ^Accounts_OAuth_Custom-[A-Za-z0-9_]+$ gets
// enterprise: true, modules: ['oauth-enterprise'], invalidValue: false
// (apps/meteor/ee/server/lib/oauth/gateCustomOAuthSettings.ts and
// addOAuthService.ts @147ee8f9d29891012cd0b02d6611a62c8d35b62a). Without
// the module the setting reads false, so updateOAuthServices never builds
// the CustomOAuth (whose constructor registers the access-token login) and
// removes the login service configuration
// (apps/meteor/server/lib/oauth/updateOAuthServices.ts
// @000a14ba6f478bd5db2fac205723018b301858a2). Built-in providers such as
// WordPress (Accounts_OAuth_Wordpress) escape the regex.
//
// PR #41992 (opened for 9.0.0, not known to be merged) deletes WordPress,
// Apple, Drupal, Facebook, LinkedIn, Meteor, Nextcloud, Twitter and Dolphin;
// Config.BuiltinOAuthRemoved emulates it.
func (s *Server) oauthActive(o OAuthService) bool {
	if o.Builtin {
		return !s.cfg.BuiltinOAuthRemoved
	}
	return s.profile < profile9 || s.oauthEnterprise.Load()
}

// SetOAuthEnterprise adds (true) or removes the oauth-enterprise module at
// run time, like a licence that is applied or lapses: on 9.0 the Custom
// OAuth services follow at once (Rocket.Chat re-runs updateOAuthServices
// on the setting change).
func (s *Server) SetOAuthEnterprise(on bool) { s.oauthEnterprise.Store(on) }

// handleSettingsOAuth is GET /api/v1/settings.oauth (no auth): the login
// service configurations, i.e. the OAuth services Rocket.Chat has switched
// on, without secrets (apps/meteor/app/api/server/v1/settings.ts
// @c4e792b760c3eeb42cba282c287471eee2943fe3; settings.yaml). Custom
// services and wordpress are reported whole ({_id, service, custom, …});
// a gated or removed service is absent.
func (s *Server) handleSettingsOAuth(c *call) reply {
	services := []any{}
	for i, o := range s.cfg.OAuthServices {
		if !s.oauthActive(o) {
			continue
		}
		server := o.ServerURL
		if server == "" {
			if u, err := url.Parse(o.IdentityURL); err == nil {
				server = u.Scheme + "://" + u.Host
			}
		}
		rel := func(abs, def string) string {
			if abs == "" {
				return def
			}
			if p, ok := strings.CutPrefix(abs, strings.TrimRight(server, "/")); ok && strings.HasPrefix(p, "/") {
				return p
			}
			return abs
		}
		scope := o.Scope
		if scope == "" {
			scope = "openid"
		}
		m := map[string]any{
			"_id": s.oauthIDs[i], "service": o.Name,
			"serverURL": server, "identityPath": rel(o.IdentityURL, "/me"), "tokenPath": rel(o.TokenURL, "/oauth/token"),
			"authorizePath": rel(o.AuthorizeURL, "/oauth/authorize"), "scope": scope, "accessTokenParam": "access_token",
			"identityTokenSentVia": o.TokenSentVia,
		}
		if !o.Builtin {
			m["custom"] = true
			m["clientId"] = o.ClientID
			m["tokenSentVia"] = o.TokenSentVia
			m["identityTokenSentVia"] = "default"
			m["usernameField"] = o.UsernameField
			m["emailField"] = o.EmailField
			m["nameField"] = o.NameField
			m["mergeUsers"] = o.MergeUsers
			m["keyField"] = "username"
			m["loginStyle"] = "popup"
			m["showButton"] = true
		}
		services = append(services, m)
	}
	return success(map[string]any{"services": services})
}

// oauthLogin is the access-token login handler of a Custom OAuth service
// (spec §4.1): check the arguments, fetch the identity with the token, then
// Accounts.updateOrCreateUserFromExternalService — find the user by
// services.<name>.id, else (MergeUsers) by username or e-mail, else create
// it — and issue a new resume token (the cap applies). The identity call is
// made without holding s.mu; find-or-create is atomic.
func (s *Server) oauthLogin(args map[string]any, now time.Time) (loginOutcome, *meteorError) {
	name, ok := args["serviceName"].(string)
	if !ok {
		return loginOutcome{}, plainError("Match error: Missing key 'serviceName'")
	}
	svc, ok := s.oauthService(name)
	if !ok {
		// No CustomOAuth registered the access-token service: unknown, gated
		// on 9.0 without oauth-enterprise, or a removed built-in provider
		// (apps/meteor/app/lib/server/oauth/oauth.ts @b0707e86212f9ded844192971c43cd4c9f558749).
		return loginOutcome{}, plainError("Unexpected AccessToken service " + name)
	}
	svc = svc.effective()
	token, ok := args["accessToken"].(string)
	if !ok {
		return loginOutcome{}, plainError("Match error: Expected string, got " + jsType(args["accessToken"]) + " in field accessToken")
	}
	exp, present := args["expiresIn"]
	if n, isNum := exp.(float64); !present || !isNum || n != math.Trunc(n) {
		if !present {
			return loginOutcome{}, plainError("Match error: Missing key 'expiresIn'")
		}
		return loginOutcome{}, plainError("Match error: Expected Integer, got " + jsType(exp) + " in field expiresIn")
	}
	ident, e := svc.fetchIdentity(token)
	if e != nil {
		return loginOutcome{}, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, e := s.oauthUser(svc, ident, now)
	if e != nil {
		return loginOutcome{}, e
	}
	// Meteor's login type is the service name; it is not "resume", so
	// the 2FA hook applies (Rocket.Chat issue #21533).
	if e := s.validateLogin(u, name, ""); e != nil {
		return loginOutcome{}, e
	}
	return s.issueToken(u, name, now), nil
}

// oauthUser is Accounts.updateOrCreateUserFromExternalService for a
// service's identity: find the user by services.<name>.id, else (Merge
// users) by username or e-mail, else create it (and it joins the default
// channels); s.mu must be held.
func (s *Server) oauthUser(svc OAuthService, ident oauthIdentity, now time.Time) (*user, *meteorError) {
	name, id := svc.Name, ident.id
	if id == "" {
		return nil, plainError("Service data for service " + name + " must include id")
	}
	if ident.username == "" {
		return nil, plainError("rcemu: the identity of " + name + " has no username; set UsernameField (Rocket.Chat would create a user without a username)")
	}
	u := s.byOAuthID(name, id)
	if u == nil && svc.MergeUsers {
		if u = s.st.findForLogin("username", ident.username); u == nil && ident.email != "" {
			u = s.st.findForLogin("email", ident.email)
		}
	}
	switch {
	case u != nil:
		if e := s.mergeOAuthUser(u, svc, ident, now); e != nil {
			return nil, e
		}
	case s.st.usernameTaken(ident.username, ""):
		return nil, &meteorError{code: 403, reason: "Username already exists."}
	case ident.email != "" && s.st.emailTaken(ident.email, ""):
		return nil, &meteorError{code: 403, reason: "Email already exists."}
	default:
		u = &user{
			id: randomID(), username: ident.username, name: ident.name, typ: "user", status: "offline",
			active: true, roles: []string{"user"}, createdAt: now, updatedAt: now, settings: map[string]any{},
			email2fa: s.cfg.TwoFactor, oauth: map[string]string{name: id},
		}
		if ident.email != "" {
			u.emails = []Email{{Address: ident.email, Verified: s.verifyExternalEmails()}}
		}
		s.st.insert(u)
		s.joinDefaultChannels(u, now) // insertUserDoc ([joinDefault] in rooms.go)
	}
	return u, nil
}

// mergeOAuthUser is the Custom OAuth hook before updateOrCreate for a user
// found: the same id and name → nothing to do; otherwise "Merge users"
// links the id and takes the identity's name (and e-mail, verified),
// and without it Rocket.Chat refuses. s.mu must be held.
func (s *Server) mergeOAuthUser(u *user, svc OAuthService, ident oauthIdentity, now time.Time) *meteorError {
	linked := u.oauth[svc.Name] == ident.id
	sameEmail := ident.email == "" || slices.ContainsFunc(u.emails, func(e Email) bool { return e.Address == ident.email })
	if linked && u.name == ident.name && sameEmail {
		return nil
	}
	if !svc.MergeUsers {
		return &meteorError{code: "CustomOAuth", reason: "User with username " + u.username + " already exists"}
	}
	oldEmails := u.emails
	if ident.email != "" && !sameEmail {
		if s.st.emailTaken(ident.email, u.id) {
			return plainError("E11000 duplicate key error collection: rocketchat.users index: emails.address_1 dup key")
		}
		u.emails = []Email{{Address: ident.email, Verified: true}}
	}
	if u.oauth == nil {
		u.oauth = map[string]string{}
	}
	u.oauth[svc.Name] = ident.id
	if ident.name != "" {
		u.name = ident.name
	}
	u.updatedAt = now
	s.st.reindex(u, u.username, oldEmails)
	return nil
}

// verifyExternalEmails is Accounts_Verify_Email_For_External_Accounts
// (default true); s.mu must be held.
func (s *Server) verifyExternalEmails() bool {
	v, ok := s.settings["Accounts_Verify_Email_For_External_Accounts"].(bool)
	return !ok || v
}

// byOAuthID finds the user whose services.<service>.id is id; s.mu must be
// held.
func (s *Server) byOAuthID(service, id string) *user {
	for _, uid := range s.st.order {
		if u := s.st.users[uid]; u != nil && u.oauth[service] == id {
			return u
		}
	}
	return nil
}

// OAuthID returns services.<service>.id of a user ("" when the user never
// logged in through that Custom OAuth service, or does not exist).
func (s *Server) OAuthID(userID, service string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.st.users[userID]; u != nil {
		return u.oauth[service]
	}
	return ""
}

// oauthIdentity is the normalised identity, restricted to the fields
// registerAccessTokenService keeps (id, email, username, name).
type oauthIdentity struct{ id, username, email, name string }

// fetchIdentity is CustomOAuth.getIdentity: GET the identity URL with the
// token, normalise the answer. Failures read "Failed to fetch identity from
// <name> at <url>. <reason>".
func (svc OAuthService) fetchIdentity(token string) (oauthIdentity, *meteorError) {
	fail := func(reason string) (oauthIdentity, *meteorError) {
		return oauthIdentity{}, plainError(fmt.Sprintf("Failed to fetch identity from %s at %s. %s", svc.Name, svc.IdentityURL, reason))
	}
	target := svc.IdentityURL
	if svc.TokenSentVia != "header" {
		u, err := url.Parse(target)
		if err != nil {
			return fail(err.Error())
		}
		q := u.Query()
		q.Set("access_token", token)
		u.RawQuery = q.Encode()
		target = u.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fail(err.Error())
	}
	req.Header.Set("User-Agent", "Meteor")
	req.Header.Set("Accept", "application/json")
	if svc.TokenSentVia == "header" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := oauthClient.Do(req)
	if err != nil {
		return fail("fetch failed")
	}
	defer res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fail(http.StatusText(res.StatusCode))
	}
	var m map[string]any
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		return fail("invalid json response body")
	}
	return svc.normalize(m)
}

// normalize is CustomOAuth.normalizeIdentity for the fields kept: the id
// from id/_id/ID/user_id/sub/userid, then the configured fields.
func (svc OAuthService) normalize(m map[string]any) (oauthIdentity, *meteorError) {
	if r, ok := m["result"].(map[string]any); ok { // the Reddit normaliser
		m = r
	}
	var out oauthIdentity
	for _, k := range []string{"id", "_id", "ID", "user_id", "CharacterID", "phid", "sub", "userid"} {
		if v := jsText(m[k]); v != "" {
			out.id = v
			break
		}
	}
	field := func(path, what string) (string, *meteorError) {
		v := jsText(nested(m, path))
		if v == "" {
			return "", plainError(fmt.Sprintf("Failed to fetch identity from %s at %s. CustomOAuth: Failed to extract %s", svc.Name, svc.IdentityURL, what))
		}
		return v, nil
	}
	var e *meteorError
	out.username = jsText(m["username"])
	if svc.UsernameField != "" {
		if out.username, e = field(svc.UsernameField, "username"); e != nil {
			return oauthIdentity{}, e
		}
	}
	out.email = jsText(m["email"])
	if svc.EmailField != "" {
		if out.email, e = field(svc.EmailField, "email"); e != nil {
			return oauthIdentity{}, e
		}
	}
	if svc.NameField != "" {
		out.name = jsText(nested(m, svc.NameField))
	}
	if out.name == "" {
		for _, k := range []string{"name", "username", "nickname", "CharacterName", "userName", "preferred_username"} {
			if out.name = jsText(m[k]); out.name != "" {
				break
			}
		}
	}
	if out.name == "" {
		out.name = out.username
	}
	return out, nil
}

// nested follows a dotted path (transform_helpers' getNestedValue).
func nested(m map[string]any, path string) any {
	var cur any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

// jsText is a string or number as JavaScript would print it; "" for
// anything else.
func jsText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

// jsType names a decoded JSON value's type for Match error messages.
func jsType(v any) string {
	switch x := v.(type) {
	case nil:
		return "undefined"
	case string:
		return strconv.Quote(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return "object"
}
