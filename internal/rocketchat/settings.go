package rocketchat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
)

// PublicSettings returns Rocket.Chat's public settings by _id (the iframe
// authentication and iframe integration settings are public; protocol spec
// §2.3).
//
// GET /api/v1/settings.public?count=500 (settings.yaml
// /api/v1/settings.public; no authentication). 200:
// {"settings":[{"_id","value"}…],"count","offset","total","success":true}.
// Retried on transport errors and 502/503/504.
func (c *Client) PublicSettings(ctx context.Context) (map[string]any, error) {
	const ep = "settings.public"
	var out struct {
		Settings []struct {
			ID    string `json:"_id"`
			Value any    `json:"value"`
		} `json:"settings"`
	}
	q := url.Values{"count": {strconv.Itoa(500)}}
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/v1/settings.public", query: q}, &out); err != nil {
		return nil, err
	}
	m := make(map[string]any, len(out.Settings))
	for _, s := range out.Settings {
		m[s.ID] = s.Value
	}
	return m, nil
}

// Head fetches path on Rocket.Chat's site (no API envelope) and returns the
// response headers, for diagnostics (X-Frame-Options, Content-Security-Policy).
func (c *Client) Head(ctx context.Context, path string) (http.Header, int, error) {
	u := c.BaseURL().JoinPath(path)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("User-Agent", c.ua)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, &Error{Endpoint: path, Err: err, Message: "cannot reach Rocket.Chat"}
	}
	resp.Body.Close()
	return resp.Header, resp.StatusCode, nil
}

// settingIDRe is what a setting _id looks like (Accounts_iframe_enabled,
// Accounts_OAuth_Custom-rcsso); anything else is refused before a request.
var settingIDRe = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,200}$`)

// Setting returns the value of one setting, public or not.
//
// GET /api/v1/settings/:_id (authenticated; permission
// view-privileged-setting; settings.yaml '/api/v1/settings/{_id}'). 200:
// {"_id","value","success":true}. Errors: 401 → IsUnauthorized; 403 →
// IsForbidden (the caller lacks view-privileged-setting; up to 7.x some
// servers answer this from the handler); 400 {"success":false} for an
// unknown or hidden setting. Retried on transport errors and 502/503/504.
func (c *Client) Setting(ctx context.Context, cr Credentials, id string) (any, error) {
	const ep = "settings/:_id"
	if !settingIDRe.MatchString(id) {
		return nil, invalidArg(ep, "invalid setting id")
	}
	var out struct {
		Value *json.RawMessage `json:"value"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/v1/settings/" + id, cr: &cr}, &out); err != nil {
		return nil, err
	}
	if out.Value == nil {
		return nil, badResponse(ep, "response has no value")
	}
	var v any
	if err := json.Unmarshal(*out.Value, &v); err != nil {
		return nil, badResponse(ep, "value is not JSON")
	}
	return v, nil
}

// SetSetting changes one setting (what Administration → Settings does).
// password, when not empty, is the caller's password, sent as the
// two-factor code Rocket.Chat accepts from password accounts (x-2fa-code:
// its sha256 hex, x-2fa-method: password); a personal access token created
// with "Ignore Two Factor Authentication" needs none.
//
// POST /api/v1/settings/:_id {"value": value} (authenticated; permission
// edit-privileged-setting; twoFactorRequired; settings.yaml
// '/api/v1/settings/{_id}'). 200 {"success":true}. Errors: 401 →
// IsUnauthorized; 403 → IsForbidden; 400 errorType totp-required or
// totp-invalid (two-factor); 400 {"success":false} for an unknown or hidden
// setting. Never retried.
func (c *Client) SetSetting(ctx context.Context, cr Credentials, id string, value any, password string) error {
	const ep = "settings/:_id"
	if !settingIDRe.MatchString(id) {
		return invalidArg(ep, "invalid setting id")
	}
	rq := call{method: http.MethodPost, endpoint: ep, path: "/api/v1/settings/" + id, cr: &cr, body: map[string]any{"value": value}}
	if password != "" {
		sum := sha256.Sum256([]byte(password))
		rq.twoFactor = hex.EncodeToString(sum[:])
		rq.secrets = append(rq.secrets, password)
	}
	return c.do(ctx, rq, nil)
}

// UpdatePermissions replaces the roles (role _ids) of each listed
// permission.
//
// POST /api/v1/permissions.update {"permissions":[{"_id","roles"}…]}
// (authenticated; permission access-permissions; user-management.yaml
// /api/v1/permissions.update, since 0.66). 200 {"permissions":[…],
// "success":true}. Errors: 401 → IsUnauthorized; 403 → IsForbidden; 400
// errorType error-invalid-permission (no such permission),
// error-invalid-role (a role that is not a role _id), invalid-params.
// Never retried.
func (c *Client) UpdatePermissions(ctx context.Context, cr Credentials, roles map[string][]string) error {
	const ep = "permissions.update"
	type perm struct {
		ID    string   `json:"_id"`
		Roles []string `json:"roles"`
	}
	list := make([]perm, 0, len(roles))
	for _, id := range slices.Sorted(maps.Keys(roles)) {
		r := roles[id]
		if r == nil {
			r = []string{}
		}
		list = append(list, perm{id, r})
	}
	return c.do(ctx, call{method: http.MethodPost, endpoint: ep, path: "/api/v1/permissions.update", cr: &cr,
		body: map[string]any{"permissions": list}}, nil)
}
