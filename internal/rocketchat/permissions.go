package rocketchat

import (
	"context"
	"net/http"
)

// Permissions returns every permission with the role _ids that hold it,
// e.g. "create-user" → ["admin"]. A user holds a permission when one of
// the role _ids in its roles (Me) is listed. Built-in roles have _id ==
// name ("admin", "bot"); custom roles have random _ids (see Roles).
//
// GET /api/v1/permissions.listAll (authenticated, no permission needed;
// user-management.yaml /api/v1/permissions.listAll, since 0.73;
// RocketChat/Rocket.Chat apps/meteor/app/api/server/v1/permissions.ts).
// 200: {"update":[{"_id","_updatedAt","roles":[…]}…],"remove":[],"success":true}.
// Errors: 401 → IsUnauthorized. Retried on transport errors and
// 502/503/504.
func (c *Client) Permissions(ctx context.Context, cr Credentials) (map[string][]string, error) {
	const ep = "permissions.listAll"
	var out struct {
		Update []struct {
			ID    string   `json:"_id"`
			Roles []string `json:"roles"`
		} `json:"update"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/v1/permissions.listAll", cr: &cr}, &out); err != nil {
		return nil, err
	}
	if out.Update == nil {
		return nil, badResponse(ep, "response has no update list")
	}
	m := make(map[string][]string, len(out.Update))
	for _, p := range out.Update {
		if p.ID != "" {
			m[p.ID] = p.Roles
		}
	}
	return m, nil
}

// Role is one entry of roles.list.
type Role struct {
	// ID is the role's _id: its name for the built-in roles, random for
	// custom roles (Rocket.Chat 4.0 and later).
	ID string `json:"_id"`
	// Name is what Administration → Workspace → Permissions shows.
	Name string `json:"name"`
	// Scope is "Users" (global roles) or "Subscriptions" (room roles).
	Scope string `json:"scope"`
	// Protected marks Rocket.Chat's built-in roles.
	Protected bool `json:"protected"`
}

// DisplayName is the role's name, or its _id when the name is empty (old
// servers).
func (r Role) DisplayName() string {
	if r.Name != "" {
		return r.Name
	}
	return r.ID
}

// Roles returns every role of the workspace.
//
// GET /api/v1/roles.list (authenticated, no permission needed;
// user-management.yaml /api/v1/roles.list, since 0.70). 200:
// {"roles":[{"_id","name","scope","description","protected","mandatory2fa"}…],"success":true}.
// Errors: 401 → IsUnauthorized. Retried on transport errors and
// 502/503/504.
func (c *Client) Roles(ctx context.Context, cr Credentials) ([]Role, error) {
	const ep = "roles.list"
	var out struct {
		Roles *[]Role `json:"roles"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/v1/roles.list", cr: &cr}, &out); err != nil {
		return nil, err
	}
	if out.Roles == nil {
		return nil, badResponse(ep, "response has no roles")
	}
	return *out.Roles, nil
}

// OAuthService is one login service configuration Rocket.Chat has
// switched on, as settings.oauth reports it (never the secret).
type OAuthService struct {
	// Service is the service key ("rcsso", "wordpress"); Name carries it
	// for the built-in services reported in short form (facebook, google…).
	Service string `json:"service"`
	Name    string `json:"name"`
	// Custom marks a Custom OAuth service (Administration → Settings →
	// OAuth → Add custom OAuth).
	Custom bool `json:"custom"`
	// ServerURL and the paths are the service's settings (a path may be
	// an absolute URL).
	ServerURL     string `json:"serverURL"`
	IdentityPath  string `json:"identityPath"`
	TokenPath     string `json:"tokenPath"`
	AuthorizePath string `json:"authorizePath"`
}

// Key is the service key: Service, else Name.
func (s OAuthService) Key() string {
	if s.Service != "" {
		return s.Service
	}
	return s.Name
}

// OAuthServices returns the OAuth login services Rocket.Chat has switched
// on. A Custom OAuth service that is disabled, or gated by Rocket.Chat 9.0
// on a workspace without the oauth-enterprise module, is absent: its
// access-token logins fail.
//
// GET /api/v1/settings.oauth (no authentication; settings.yaml
// /api/v1/settings.oauth, since 0.63; RocketChat/Rocket.Chat
// apps/meteor/app/api/server/v1/settings.ts). 200: {"services":[…],
// "success":true}; custom services and wordpress come whole
// ({_id, service, custom, serverURL, identityPath, …}), the other built-in
// ones as {_id, name, clientId, …, custom:false}. Retried on transport
// errors and 502/503/504.
func (c *Client) OAuthServices(ctx context.Context) ([]OAuthService, error) {
	const ep = "settings.oauth"
	var out struct {
		Services *[]OAuthService `json:"services"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/v1/settings.oauth"}, &out); err != nil {
		return nil, err
	}
	if out.Services == nil {
		return nil, badResponse(ep, "response has no services")
	}
	return *out.Services, nil
}
