package rcemu

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Roles and permissions, as Rocket.Chat keeps them in its roles and
// permissions collections.
//
// A role document is {_id, name, scope, description, protected,
// mandatory2fa}. The built-in roles have _id == name; custom roles (Premium
// "custom-roles" module from 6.x on) get a random _id. users.roles and each
// permission's roles hold role _ids, and hasPermission is "one of the
// user's roles is in the permission's roles" (RocketChat/Rocket.Chat
// apps/meteor/app/api/server/v1/roles.ts @6ff45af4ea280a5b487385fb51300b49bdbfa195,
// apps/meteor/app/api/server/v1/permissions.ts @b3e1b4a33b97bfa3983150c5eb2de0222c2dff35).
// Settings-level permissions ("change-setting-…") are not emulated.

// role is one document of the roles collection.
type role struct {
	id, name, scope, description string
	protected                    bool
	updatedAt                    time.Time
}

// permission is one document of the permissions collection.
type permission struct {
	roles     []string // role _ids
	updatedAt time.Time
}

// defaultRoles are Rocket.Chat's protected roles: upsertPermissions'
// defaultRoles (RocketChat/Rocket.Chat
// apps/meteor/app/authorization/server/functions/upsertPermissions.ts
// @2638a63cebd1c6067bf1ea4c4225d78140f84360) plus the Premium roles
// livechat-monitor, auditor and auditor-log that users.create accepts on
// licensed workspaces.
var defaultRoles = []role{
	{id: "admin", scope: "Users", description: "Admin"},
	{id: "moderator", scope: "Subscriptions", description: "Moderator"},
	{id: "leader", scope: "Subscriptions", description: "Leader"},
	{id: "owner", scope: "Subscriptions", description: "Owner"},
	{id: "user", scope: "Users"},
	{id: "bot", scope: "Users"},
	{id: "app", scope: "Users"},
	{id: "guest", scope: "Users"},
	{id: "anonymous", scope: "Users"},
	{id: "livechat-agent", scope: "Users", description: "Livechat Agent"},
	{id: "livechat-manager", scope: "Users", description: "Livechat Manager"},
	{id: "livechat-monitor", scope: "Users", description: "Livechat Monitor"},
	{id: "auditor", scope: "Users", description: "Auditor"},
	{id: "auditor-log", scope: "Users", description: "Auditor Log"},
}

// defaultPermissions are Rocket.Chat's default role assignments for the
// permissions that user administration, token minting, OAuth and the rate
// limiter check (spec §4.15; upsertPermissions.ts @2638a63cebd1c6067bf1ea4c4225d78140f84360).
// The bot role holds api-bypass-rate-limit but none of the user
// administration permissions: a service account with only bot cannot
// create users ("Adding user is not allowed").
var defaultPermissions = map[string][]string{
	"access-permissions": {"admin"},
	// Room and team memberships (rooms.go, roomsapi.go;
	// apps/meteor/app/authorization/server/constant/permissions.ts
	// @7dd565531895bdf38d8db88adf6172125f76f444): no role may add users to
	// every private group, nor kick them from every private group.
	"add-user-to-joined-room":       {"admin", "owner", "moderator"},
	"add-user-to-any-c-room":        {"admin"},
	"add-user-to-any-p-room":        {},
	"kick-user-from-any-c-room":     {"admin"},
	"kick-user-from-any-p-room":     {},
	"remove-user":                   {"admin", "owner", "moderator"},
	"add-team-member":               {"admin", "owner", "moderator"},
	"edit-team-member":              {"admin", "owner", "moderator"},
	"view-all-teams":                {"admin"},
	"view-joined-room":              {"guest", "bot", "app", "anonymous"},
	"view-p-room":                   {"admin", "user", "anonymous", "guest"},
	"preview-c-room":                {"admin", "user", "anonymous"}, // the chat's loadHistory (chat.go)
	"view-broadcast-member-list":    {"admin", "owner", "moderator"},
	"access-setting-permissions":    {"admin"},
	"add-oauth-service":             {"admin"},
	"api-bypass-rate-limit":         {"admin", "bot", "app"},
	"assign-admin-role":             {"admin"},
	"assign-roles":                  {"admin"},
	"bulk-register-user":            {"admin"},
	"create-c":                      {"admin", "user", "bot", "app"},
	"create-d":                      {"admin", "user", "bot", "app"},
	"create-p":                      {"admin", "user", "bot", "app"},
	"create-personal-access-tokens": {"admin", "user"},
	"create-user":                   {"admin"},
	"delete-user":                   {"admin"},
	"edit-other-user-active-status": {"admin"},
	"edit-other-user-avatar":        {"admin"},
	"edit-other-user-e2ee":          {"admin"},
	"edit-other-user-info":          {"admin"},
	"edit-other-user-password":      {"admin"},
	"edit-other-user-totp":          {"admin"},
	"edit-privileged-setting":       {"admin"},
	"logout-other-user":             {"admin"},
	"manage-oauth-apps":             {"admin"},
	"message-impersonate":           {"bot", "app"},
	"send-many-messages":            {"admin", "bot", "app"},
	"user-generate-access-token":    {"admin"},
	"view-c-room":                   {"admin", "user", "bot", "app", "anonymous"},
	"view-d-room":                   {"admin", "user", "bot", "app", "guest"},
	"view-full-other-user-info":     {"admin"},
	"view-other-user-channels":      {"admin"},
	"view-privileged-setting":       {"admin"},
	"view-user-administration":      {"admin"},
}

// initRoles fills the roles and permissions collections with the defaults.
func (s *Server) initRoles(now time.Time) {
	s.roles = map[string]*role{}
	for _, r := range defaultRoles {
		r.name, r.protected, r.updatedAt = r.id, true, now
		s.roles[r.id] = &r
		s.roleOrder = append(s.roleOrder, r.id)
	}
	s.perms = map[string]*permission{}
	for k, v := range defaultPermissions {
		s.perms[k] = &permission{roles: slices.Clone(v), updatedAt: now}
	}
}

// hasPermission is Rocket.Chat's hasPermission for a global permission:
// one of u's roles (role _ids) holds it; s.mu must be held.
func (s *Server) hasPermission(u *user, perm string) bool {
	if u == nil {
		return false
	}
	p := s.perms[perm]
	if p == nil {
		return false
	}
	for _, r := range p.roles {
		if u.hasRole(r) {
			return true
		}
	}
	return false
}

// roleExists reports whether id is a role _id (getRoleIds in
// validateUserData); s.mu must be held.
func (s *Server) roleExists(id string) bool { return s.roles[id] != nil }

// resolveRole maps a role _id or name to its _id ("" when unknown); s.mu
// must be held.
func (s *Server) resolveRole(idOrName string) string {
	if s.roles[idOrName] != nil {
		return idOrName
	}
	for _, id := range s.roleOrder {
		if s.roles[id].name == idOrName {
			return id
		}
	}
	return ""
}

// handlePermissionsListAll is GET /api/v1/permissions.listAll (auth, no
// permission needed; permissions.ts @b3e1b4a33b97bfa3983150c5eb2de0222c2dff35,
// user-management.yaml): {update:[{_id, _updatedAt, roles}], remove:[],
// success}. With ?updatedSince=<ISO date> only permissions changed after it
// (an unparsable date is 400 error-roomId-param-invalid, as Rocket.Chat
// names it).
func (s *Server) handlePermissionsListAll(c *call) reply {
	var since time.Time
	if v := c.query.Get("updatedSince"); v != "" {
		t, err := parseJSDate(v)
		if err != nil {
			return meteorFailure("error-roomId-param-invalid", `The "updatedSince" query parameter must be a valid date.`, nil)
		}
		since = t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	update := []any{}
	for _, id := range slices.Sorted(maps.Keys(s.perms)) {
		p := s.perms[id]
		if !since.IsZero() && !p.updatedAt.After(since) {
			continue
		}
		update = append(update, map[string]any{"_id": id, "_updatedAt": isoTime(p.updatedAt), "roles": slices.Clone(p.roles)})
	}
	return success(map[string]any{"update": update, "remove": []any{}})
}

// parseJSDate accepts what JavaScript's Date.parse accepts for the ISO
// forms clients send.
func parseJSDate(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not a date")
}

// handleRolesList is GET /api/v1/roles.list (auth, no permission needed;
// roles.ts @6ff45af4ea280a5b487385fb51300b49bdbfa195, user-management.yaml):
// {roles:[{_id, name, scope, description, protected, mandatory2fa}], success}.
func (s *Server) handleRolesList(c *call) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]any, 0, len(s.roleOrder))
	for _, id := range s.roleOrder {
		r := s.roles[id]
		list = append(list, map[string]any{"_id": r.id, "name": r.name, "scope": r.scope, "description": r.description,
			"protected": r.protected, "mandatory2fa": false})
	}
	return success(map[string]any{"roles": list})
}

// ---- test and demo helpers ----

// SetPermissionRoles replaces the roles holding a permission (like the
// admin's Permissions page, Administration → Workspace → Permissions),
// e.g. SetPermissionRoles("create-user", "admin", "bot"). Roles are role
// _ids or names; unknown ones are kept as given (Rocket.Chat would refuse
// them with error-invalid-role).
func (s *Server) SetPermissionRoles(perm string, roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]string, 0, len(roles))
	for _, r := range roles {
		if id := s.resolveRole(r); id != "" {
			r = id
		}
		ids = append(ids, r)
	}
	s.perms[perm] = &permission{roles: ids, updatedAt: s.now()}
}

// AddRole creates a custom role (Administration → Workspace → Permissions →
// Roles → Create role; a Premium feature in Rocket.Chat 6.x and later)
// called name, scope Users, not protected, with a random _id, and adds it to
// each of the permissions. It returns the role's _id. Errors: an existing
// role of that name or _id (Rocket.Chat: error-duplicate-role-names-not-allowed).
func (s *Server) AddRole(name string, permissions ...string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.TrimSpace(name) == "" {
		return "", errors.New("rcemu: AddRole: empty name")
	}
	if s.resolveRole(name) != "" {
		return "", fmt.Errorf("rcemu: AddRole: role name %q already exists", name)
	}
	now := s.now()
	r := &role{id: randomID(), name: name, scope: "Users", updatedAt: now}
	s.roles[r.id] = r
	s.roleOrder = append(s.roleOrder, r.id)
	for _, p := range permissions {
		perm := s.perms[p]
		if perm == nil {
			perm = &permission{}
			s.perms[p] = perm
		}
		perm.roles = append(perm.roles, r.id)
		perm.updatedAt = now
	}
	return r.id, nil
}

// SetUserRoles replaces a user's roles (role _ids or names), like editing
// the user under Administration → Workspace → Users. Errors: ErrNoUser, or
// an unknown role.
func (s *Server) SetUserRoles(userID string, roles ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.users[userID]
	if u == nil {
		return ErrNoUser
	}
	ids := make([]string, 0, len(roles))
	for _, r := range roles {
		id := s.resolveRole(r)
		if id == "" {
			return fmt.Errorf("rcemu: SetUserRoles: unknown role %q", r)
		}
		ids = append(ids, id)
	}
	u.roles = ids
	u.typ = "user"
	if slices.Contains(ids, "bot") {
		u.typ = "bot"
	}
	u.updatedAt = s.now()
	return nil
}
