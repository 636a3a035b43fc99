package doctor

import (
	"fmt"
	"slices"
	"strings"

	"github.com/rcsso/rcsso/internal/rocketchat"
)

// Permission is a Rocket.Chat permission the service account needs and
// what rcsso does with it.
type Permission struct {
	Name, Use string
}

// PermissionGap is what the service account lacks of the permissions a
// minting mode needs, found by ComparePermissions.
type PermissionGap struct {
	// Missing are the permissions no role of the account holds.
	Missing []Permission
	// Holders names, per missing permission, the roles that hold it.
	Holders map[string][]string
	// Username and Roles (display names) are the account's.
	Username string
	Roles    []string
	// Where is where the administrator grants permissions on this
	// version.
	Where string
}

// ComparePermissions compares need with what the account me holds through
// its roles: role _ids from /me against permissions.listAll (perms:
// permission → role _ids; any role, custom roles included), role names
// from roles.list (may be nil) for the message.
func ComparePermissions(need []Permission, me rocketchat.User, perms map[string][]string, roles []rocketchat.Role, info rocketchat.ServerInfo) PermissionGap {
	names := map[string]string{}
	for _, r := range roles {
		names[r.ID] = r.DisplayName()
	}
	name := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return id
	}
	g := PermissionGap{Username: me.Username, Holders: map[string][]string{}, Where: "Administration → Workspace → Permissions"}
	if info.Major() > 0 && info.Major() < 6 {
		g.Where = "Administration → Permissions"
	}
	for _, r := range me.Roles {
		g.Roles = append(g.Roles, name(r))
	}
	for _, n := range need {
		holders := perms[n.Name]
		if slices.ContainsFunc(me.Roles, func(r string) bool { return slices.Contains(holders, r) }) {
			continue
		}
		g.Missing = append(g.Missing, n)
		for _, h := range holders {
			g.Holders[n.Name] = append(g.Holders[n.Name], name(h))
		}
	}
	return g
}

// Found says what the account lacks, for mode (the minting mode's name).
func (g PermissionGap) Found(mode string) string {
	var missing []string
	for _, n := range g.Missing {
		held := "no role holds it"
		if h := g.Holders[n.Name]; len(h) > 0 {
			held = "held by " + strings.Join(h, ", ")
		}
		missing = append(missing, fmt.Sprintf("%s (%s; %s)", n.Name, n.Use, held))
	}
	return fmt.Sprintf("the service account %q (roles: %s) lacks %d permission(s) minting mode %s needs: %s",
		g.Username, strings.Join(g.Roles, ", "), len(g.Missing), mode, strings.Join(missing, "; "))
}

// Fix says where to grant the missing permissions.
func (g PermissionGap) Fix() string {
	mine := strings.Join(g.Roles, ", ")
	return fmt.Sprintf("Grant each under %s, ticking it for one of the account's roles (%s) or for a role you add to the account; or give the account the admin role", g.Where, mine)
}

// Message is Found and Fix in one sentence pair (the start-up refusal).
func (g PermissionGap) Message(mode string) string { return g.Found(mode) + ". " + g.Fix() }
