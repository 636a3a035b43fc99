package rocketchat

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// badResponse is the error for a 2xx response that lacks what the endpoint
// promises (e.g. no authToken).
func badResponse(endpoint, msg string) *Error {
	return &Error{Endpoint: endpoint, Status: http.StatusOK, Message: msg}
}

// Info returns the server version.
//
// GET /api/info (unauthenticated; miscellaneous.ts e2e, protocol spec §6).
// Body: {"version":"7.10.0","success":true} (recent servers: "7.10", and
// supportedVersions, see ServerInfo); admins of old servers get
// {"info":{"version":…},"success":true}, which is accepted too. A server that
// hides its version ({"success":true} only) yields Version "" and no error.
// Retried on transport errors and 502/503/504. Errors: *Error; a JSON body
// with neither a version nor "success":true is an *Error with Status 200.
func (c *Client) Info(ctx context.Context) (ServerInfo, error) {
	var out struct {
		Success           bool   `json:"success"`
		Version           string `json:"version"`
		SupportedVersions any    `json:"supportedVersions"`
		Info              *struct {
			Version string `json:"version"`
		} `json:"info"`
	}
	const ep = "info"
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/info"}, &out); err != nil {
		return ServerInfo{}, err
	}
	v := out.Version
	if v == "" && out.Info != nil {
		v = out.Info.Version
	}
	if v == "" && !out.Success {
		return ServerInfo{}, badResponse(ep, "response has no version (is the base URL a Rocket.Chat server?)")
	}
	sv, _ := out.SupportedVersions.(string) // anything else: none
	return ServerInfo{Version: v, SupportedVersions: sv}, nil
}

// LoginPassword logs in with a username or email (a user containing '@' is
// treated as an email by Rocket.Chat) and a plain password, and returns a
// new resume token.
//
// POST /api/v1/login {"user":…,"password":…} (protocol spec §4.1;
// authentication.yaml /api/v1/login). 200:
// {"status":"success","data":{"userId","authToken","me"}} (+"success":true
// from 7.x). Rate limited to 10/min per IP (§4.14). Never retried.
//
// Errors (HTTP 401, *Error with ErrorType from the body "error"):
// "Unauthorized" (unknown user or wrong password), "error-user-is-not-activated",
// "totp-required" (email/TOTP 2FA), "error-login-blocked-for-user|ip";
// IsUnauthorized is true for all of them; 429 → IsRateLimited.
func (c *Client) LoginPassword(ctx context.Context, user, password string) (LoginResult, error) {
	const ep = "login"
	if user == "" || password == "" {
		return LoginResult{}, invalidArg(ep, "user and password are required")
	}
	body := struct {
		User     string `json:"user"`
		Password string `json:"password"`
	}{user, password}
	return c.login(ctx, body, password)
}

// LoginResume validates a resume token (or personal access token) and
// returns it unchanged with the user.
//
// POST /api/v1/login {"resume":…} (protocol spec §4.1, §2.2). 200 as for
// LoginPassword; Rocket.Chat returns the same token. A missing or purged
// token fails with Meteor error 403 "You've been logged out by the server.
// Please log in again." and an expired one with "Your session has expired.":
// IsUnauthorized reports both. Rate limited like every /login. Never retried.
func (c *Client) LoginResume(ctx context.Context, token string) (LoginResult, error) {
	const ep = "login"
	if token == "" {
		return LoginResult{}, invalidArg(ep, "resume token is required")
	}
	body := struct {
		Resume string `json:"resume"`
	}{token}
	return c.login(ctx, body, token)
}

// LoginOAuth logs in with an access token of a Custom OAuth service
// configured in Rocket.Chat (Administration → OAuth → Custom OAuth
// serviceName) and returns a new resume token. Rocket.Chat calls the
// service's identity path with the token, then finds the user by
// services.<serviceName>.id, merges it with an existing user by username or
// e-mail ("Merge users"), or creates it. No Rocket.Chat credentials are
// needed.
//
// POST /api/v1/login {"serviceName":…,"accessToken":…,"expiresIn":…}
// (protocol spec §4.1; Rocket.Chat's registerAccessTokenService). expiresIn
// is the access token's remaining lifetime in seconds (Rocket.Chat only
// stores it). 200 as for LoginPassword. Rate limited like every /login.
// Never retried.
//
// Errors (HTTP 401 → IsUnauthorized): "Unexpected AccessToken service
// <name>" (no such Custom OAuth service), "Failed to fetch identity from
// <name> at <url>. <reason>" (Rocket.Chat could not use the token at the
// identity path), ErrorType "CustomOAuth" (a different user already has
// the username and "Merge users" is off), Meteor code 403 "Username
// already exists." / "Email already exists.", "totp-required",
// "error-user-is-not-activated"; 429 → IsRateLimited. The access token is
// treated as a secret.
func (c *Client) LoginOAuth(ctx context.Context, serviceName, accessToken string, expiresIn int) (LoginResult, error) {
	const ep = "login"
	if serviceName == "" || accessToken == "" {
		return LoginResult{}, invalidArg(ep, "serviceName and accessToken are required")
	}
	if expiresIn < 0 {
		return LoginResult{}, invalidArg(ep, "expiresIn must not be negative")
	}
	body := struct {
		ServiceName string `json:"serviceName"`
		AccessToken string `json:"accessToken"`
		ExpiresIn   int    `json:"expiresIn"`
	}{serviceName, accessToken, expiresIn}
	return c.login(ctx, body, accessToken)
}

// login is POST /api/v1/login, paced by Options.Budget: Rocket.Chat rate
// limits it for every caller (it is unauthenticated).
func (c *Client) login(ctx context.Context, body any, secret string) (LoginResult, error) {
	const ep = "login"
	var out struct {
		Data LoginResult `json:"data"`
	}
	err := c.do(ctx, call{method: http.MethodPost, endpoint: ep, path: "/api/v1/login",
		body: body, secrets: []string{secret}, paced: true}, &out)
	if err != nil {
		return LoginResult{}, err
	}
	if out.Data.UserID == "" || out.Data.AuthToken == "" {
		return LoginResult{}, badResponse(ep, "response has no data.userId or data.authToken")
	}
	return out.Data, nil
}

// Me returns the user the credentials belong to; use it to check that a
// cached token is still valid.
//
// GET /api/v1/me (protocol spec §4.2; authentication.yaml /api/v1/me). 200:
// the user object flat at the top level plus "success":true (6.x–8.x alike).
// Errors: 401 → IsUnauthorized (token unknown or purged). Retried on
// transport errors and 502/503/504. Paced by Options.Budget (rate limited
// for persons).
func (c *Client) Me(ctx context.Context, cr Credentials) (User, error) {
	const ep = "me"
	var u User
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/v1/me", cr: &cr, paced: true}, &u); err != nil {
		return User{}, err
	}
	if u.ID == "" {
		return User{}, badResponse(ep, "response has no _id")
	}
	return u, nil
}

// Logout invalidates the token in cr (a resume token or, if cr holds a
// personal access token, that PAT).
//
// POST /api/v1/logout without a body (protocol spec §4.3). 200:
// {"status":"success","data":{"message":"You've been logged out!"}}
// (+"success":true in 7.x). Errors: 401 → IsUnauthorized (already invalid).
// Never retried. Paced by Options.Budget (rate limited for persons).
func (c *Client) Logout(ctx context.Context, cr Credentials) error {
	return c.do(ctx, call{method: http.MethodPost, endpoint: "logout", path: "/api/v1/logout", cr: &cr, paced: true}, nil)
}

// UserInfoByUsername looks a user up by exact username.
//
// GET /api/v1/users.info?username=… (protocol spec §4.4; user-management.yaml
// /api/v1/users.info). 200: {"user":{…},"success":true}; emails and roles
// need view-full-other-user-info. Errors: unknown user → IsNotFound (6.x+
// 400 "User not found."; 3.x 'Failed to get the user data…'); 401 →
// IsUnauthorized. Retried on transport errors and 502/503/504.
func (c *Client) UserInfoByUsername(ctx context.Context, cr Credentials, username string) (User, error) {
	if username == "" {
		return User{}, invalidArg("users.info", "username is required")
	}
	return c.userInfo(ctx, cr, url.Values{"username": {username}})
}

// UserInfoByID looks a user up by _id.
//
// GET /api/v1/users.info?userId=… (protocol spec §4.4). Shapes, errors and
// retries as UserInfoByUsername.
func (c *Client) UserInfoByID(ctx context.Context, cr Credentials, userID string) (User, error) {
	if userID == "" {
		return User{}, invalidArg("users.info", "userID is required")
	}
	return c.userInfo(ctx, cr, url.Values{"userId": {userID}})
}

func (c *Client) userInfo(ctx context.Context, cr Credentials, q url.Values) (User, error) {
	const ep = "users.info"
	var out struct {
		User User `json:"user"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/v1/users.info", query: q, cr: &cr}, &out); err != nil {
		return User{}, err
	}
	if out.User.ID == "" {
		return User{}, badResponse(ep, "response has no user._id")
	}
	return out.User, nil
}

// CreateUser creates a user (caller needs create-user).
//
// POST /api/v1/users.create with req as body (protocol spec §4.5;
// user-management.yaml /api/v1/users.create). 200:
// {"user":{_id, username, emails, type, active, roles, name, …},"success":true}.
// Errors (400, *Error.ErrorType): error-field-unavailable (username or email
// taken, case-insensitive → IsFieldUnavailable), error-blocked-username,
// error-input-is-not-a-valid-field, error-the-field-is-required,
// error-action-not-allowed, invalid-params (ajv, 6.x+), 3.x "Match error: …"
// without errorType; 401 → IsUnauthorized; 403 → permission denied. Never
// retried (a timed-out create may have succeeded: look the user up).
func (c *Client) CreateUser(ctx context.Context, cr Credentials, req CreateUserRequest) (User, error) {
	const ep = "users.create"
	var out struct {
		User User `json:"user"`
	}
	if err := c.do(ctx, call{method: http.MethodPost, endpoint: ep, path: "/api/v1/users.create",
		body: req, cr: &cr, secrets: []string{req.Password}}, &out); err != nil {
		return User{}, err
	}
	if out.User.ID == "" {
		return User{}, badResponse(ep, "response has no user._id")
	}
	return out.User, nil
}

// UpdateUser changes fields of user userID; nil fields of data are left
// alone.
//
// POST /api/v1/users.update {"userId":…,"data":{…}} (protocol spec §4.6;
// user-management.yaml /api/v1/users.update). 200: {"user":{…},"success":true}.
// Errors: error-field-unavailable (→ IsFieldUnavailable), totp-required (the
// caller authenticated with a normal login token instead of a PAT with
// bypassTwoFactor), invalid-params, error-action-not-allowed; 401 →
// IsUnauthorized. Never retried.
func (c *Client) UpdateUser(ctx context.Context, cr Credentials, userID string, data UpdateUserData) (User, error) {
	const ep = "users.update"
	if userID == "" {
		return User{}, invalidArg(ep, "userID is required")
	}
	body := struct {
		UserID string         `json:"userId"`
		Data   UpdateUserData `json:"data"`
	}{userID, data}
	var secrets []string
	if data.Password != nil {
		secrets = append(secrets, *data.Password)
	}
	var out struct {
		User User `json:"user"`
	}
	if err := c.do(ctx, call{method: http.MethodPost, endpoint: ep, path: "/api/v1/users.update",
		body: body, cr: &cr, secrets: secrets}, &out); err != nil {
		return User{}, err
	}
	if out.User.ID == "" {
		return User{}, badResponse(ep, "response has no user._id")
	}
	return out.User, nil
}

// CreateToken mints a new resume token for user userID and returns the
// user's credentials.
//
// POST /api/v1/users.createToken {"userId":…[,"secret":…]} (protocol spec
// §4.7; user-management.yaml /api/v1/users.createToken). secret is sent only
// when non-empty: 8.x requires it (= env CREATE_TOKENS_FOR_USERS_SECRET);
// 2.1–7.x need env CREATE_TOKENS_FOR_USERS=true instead. Another user's
// token needs user-generate-access-token. 200:
// {"data":{"userId","authToken"},"success":true}; a response for a
// different userId is rejected.
//
// Errors: 400 error-not-authorized ("Not authorized": env flag unset, wrong
// secret or no permission); 7.13.x bug #40598 → IsTokensBug (retry once);
// 401 → IsUnauthorized. Never retried automatically.
func (c *Client) CreateToken(ctx context.Context, cr Credentials, userID, secret string) (Credentials, error) {
	const ep = "users.createToken"
	if userID == "" {
		return Credentials{}, invalidArg(ep, "userID is required")
	}
	body := struct {
		UserID string `json:"userId"`
		Secret string `json:"secret,omitempty"`
	}{userID, secret}
	var out struct {
		Data struct {
			UserID    string `json:"userId"`
			AuthToken string `json:"authToken"`
		} `json:"data"`
	}
	if err := c.do(ctx, call{method: http.MethodPost, endpoint: ep, path: "/api/v1/users.createToken",
		body: body, cr: &cr, secrets: []string{secret}}, &out); err != nil {
		return Credentials{}, err
	}
	if out.Data.AuthToken == "" {
		return Credentials{}, badResponse(ep, "response has no data.authToken")
	}
	if out.Data.UserID != "" && out.Data.UserID != userID {
		return Credentials{}, badResponse(ep, "response is for user "+strconv.Quote(out.Data.UserID)+", not the requested one")
	}
	return Credentials{UserID: userID, AuthToken: out.Data.AuthToken}, nil
}

// ListUsers returns one page of users and the total number of users.
//
// GET /api/v1/users.list?offset=…&count=… (user-management.yaml
// /api/v1/users.list). offset ≥ 0; count > 0 sets the page size (capped by
// the server's API_Upper_Count_Limit, default 100), count 0 uses the
// server default. 200: {"users":[…],"count","offset","total","success":true};
// when total is missing, offset+len(users) is returned. Errors: 401 →
// IsUnauthorized; 403 without view-d-room. Retried on transport errors and
// 502/503/504.
func (c *Client) ListUsers(ctx context.Context, cr Credentials, offset, count int) ([]User, int, error) {
	const ep = "users.list"
	if offset < 0 || count < 0 {
		return nil, 0, invalidArg(ep, "offset and count must not be negative")
	}
	q := url.Values{"offset": {strconv.Itoa(offset)}}
	if count > 0 {
		q.Set("count", strconv.Itoa(count))
	}
	var out struct {
		Users []User `json:"users"`
		Total *int   `json:"total"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/v1/users.list", query: q, cr: &cr}, &out); err != nil {
		return nil, 0, err
	}
	total := offset + len(out.Users)
	if out.Total != nil {
		total = *out.Total
	}
	if out.Users == nil {
		out.Users = []User{}
	}
	return out.Users, total, nil
}

// SetAvatar sets another user's avatar from an image URL that Rocket.Chat
// fetches itself.
//
// POST /api/v1/users.setAvatar {"avatarUrl":…,"userId":…} (protocol spec
// §4.8; user-management.yaml /api/v1/users.setAvatar). 200:
// {"success":true}. Needs edit-other-user-avatar for other users. Errors:
// 400 for an unreachable, private-address or non-image URL (newer servers
// block SSRF), error-not-allowed; 401 → IsUnauthorized. Never retried.
func (c *Client) SetAvatar(ctx context.Context, cr Credentials, userID, avatarURL string) error {
	const ep = "users.setAvatar"
	if userID == "" || avatarURL == "" {
		return invalidArg(ep, "userID and avatarURL are required")
	}
	body := struct {
		AvatarURL string `json:"avatarUrl"`
		UserID    string `json:"userId"`
	}{avatarURL, userID}
	return c.do(ctx, call{method: http.MethodPost, endpoint: ep, path: "/api/v1/users.setAvatar", body: body, cr: &cr}, nil)
}
