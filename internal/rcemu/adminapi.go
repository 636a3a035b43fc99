package rcemu

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
)

// The administration endpoints `rcsso setup` writes through: one setting at
// a time and the roles of permissions.

// handleSettingGet is GET /api/v1/settings/:_id (auth; route-level
// permissionsRequired GET view-privileged-setting, so a caller without it
// gets forbiddenRoute's 403): 200 {_id, value, success}; a hidden or
// unknown setting is API.v1.failure() with no argument, 400
// {"success":false} (RocketChat/Rocket.Chat apps/meteor/app/api/server/v1/settings.ts
// @c4e792b760c3eeb42cba282c287471eee2943fe3; settings.yaml
// '/api/v1/settings/{_id}' get).
func (s *Server) handleSettingGet(c *call) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.settings[c.param]
	if !ok || isHiddenSetting(c.param) {
		return reply{status: http.StatusBadRequest, body: map[string]any{"success": false}}
	}
	return success(map[string]any{"_id": c.param, "value": v})
}

// handleSettingPost is POST /api/v1/settings/:_id (auth; permissionsRequired
// POST edit-privileged-setting; twoFactorRequired, so with Config.TwoFactor a
// caller needs a PAT with bypassTwoFactor or x-2fa-code): body {value} of
// any JSON type, stored as sent (Settings.updateValueNotHiddenById does not
// check the type). 200 {success:true}. A hidden or unknown setting, or a
// body without "value" (isSettingsUpdatePropDefault fails), is
// API.v1.failure(): 400 {"success":false}. Action and colour settings
// ({execute}, {editor}) are not emulated (settings.ts
// @c4e792b760c3eeb42cba282c287471eee2943fe3; settings.yaml
// '/api/v1/settings/{_id}' post).
func (s *Server) handleSettingPost(c *call) reply {
	v, hasValue := c.body["value"]
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.settings[c.param]; !ok || isHiddenSetting(c.param) || !hasValue {
		return reply{status: http.StatusBadRequest, body: map[string]any{"success": false}}
	}
	s.settings[c.param] = v
	return success(nil)
}

// handlePermissionsUpdate is POST /api/v1/permissions.update (auth;
// permissionsRequired access-permissions): body {permissions:[{_id,
// roles:[role _id…]}]} replaces each listed permission's roles. The body is
// checked like its ajv schema (object with only "permissions", an array of
// objects with only a string _id and an array of unique strings roles):
// otherwise 400 invalid-params. Every _id must be a permission (else 400
// {error:"Invalid permission", errorType:"error-invalid-permission"}) and
// every role a role _id, not a name (else 400 {error:"Invalid role",
// errorType:"error-invalid-role"}); nothing changes on an error. 200
// {permissions:[{_id, _updatedAt, roles}…], success} lists every permission
// (RocketChat/Rocket.Chat apps/meteor/app/api/server/v1/permissions.ts
// @028925b28d7e369f16bce8d0f4bf8a6417dc45c9; user-management.yaml
// /api/v1/permissions.update).
func (s *Server) handlePermissionsUpdate(c *call) reply {
	type update struct {
		id    string
		roles []string
	}
	var ups []update
	for k := range c.body {
		if k != "permissions" {
			return invalidParams("must NOT have additional properties")
		}
	}
	raw, ok := c.body["permissions"]
	if !ok {
		return invalidParams("must have required property 'permissions'")
	}
	list, ok := raw.([]any)
	if !ok {
		return invalidParams("/permissions must be array")
	}
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return invalidParams(fmt.Sprintf("/permissions/%d must be object", i))
		}
		for k := range m {
			if k != "_id" && k != "roles" {
				return invalidParams(fmt.Sprintf("/permissions/%d must NOT have additional properties", i))
			}
		}
		id, ok := m["_id"].(string)
		if !ok {
			if _, has := m["_id"]; !has {
				return invalidParams(fmt.Sprintf("/permissions/%d must have required property '_id'", i))
			}
			return invalidParams(fmt.Sprintf("/permissions/%d/_id must be string", i))
		}
		rl, ok := m["roles"].([]any)
		if !ok {
			if _, has := m["roles"]; !has {
				return invalidParams(fmt.Sprintf("/permissions/%d must have required property 'roles'", i))
			}
			return invalidParams(fmt.Sprintf("/permissions/%d/roles must be array", i))
		}
		roles := make([]string, 0, len(rl))
		for j, r := range rl {
			rs, ok := r.(string)
			if !ok {
				return invalidParams(fmt.Sprintf("/permissions/%d/roles/%d must be string", i, j))
			}
			if slices.Contains(roles, rs) {
				return invalidParams(fmt.Sprintf("/permissions/%d/roles must NOT have duplicate items", i))
			}
			roles = append(roles, rs)
		}
		ups = append(ups, update{id, roles})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Permissions.find({_id: {$in: keys}}) must find as many documents as
	// were sent (so a permission listed twice is refused too).
	found := map[string]bool{}
	for _, u := range ups {
		if s.perms[u.id] != nil {
			found[u.id] = true
		}
	}
	if len(found) != len(ups) {
		return reply{status: http.StatusBadRequest, body: map[string]any{"success": false, "error": "Invalid permission", "errorType": "error-invalid-permission"}}
	}
	for _, u := range ups {
		for _, r := range u.roles {
			if s.roles[r] == nil {
				return reply{status: http.StatusBadRequest, body: map[string]any{"success": false, "error": "Invalid role", "errorType": "error-invalid-role"}}
			}
		}
	}
	now := s.now()
	for _, u := range ups {
		s.perms[u.id] = &permission{roles: u.roles, updatedAt: now}
	}
	out := make([]any, 0, len(s.perms))
	for _, id := range slices.Sorted(maps.Keys(s.perms)) {
		p := s.perms[id]
		out = append(out, map[string]any{"_id": id, "_updatedAt": isoTime(p.updatedAt), "roles": slices.Clone(p.roles)})
	}
	return success(map[string]any{"permissions": out})
}
