package mode

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
)

// incapableRecheck is how long a "cannot mint" verdict is kept before
// /readyz asks Rocket.Chat again (an administrator may have fixed it).
const incapableRecheck = time.Minute

// Permission is a Rocket.Chat permission the service account needs and
// what rcsso does with it.
type Permission struct {
	Name, Use string
}

// ServicePermissions lists the permissions the service account needs to
// provision people through the REST API (protocol spec §4.5–§4.15;
// RocketChat/Rocket.Chat apps/meteor/app/lib/server/functions/saveUser/validateUserData.ts
// and validateUserEditing.ts, apps/meteor/server/meteor-methods/auth/createToken.ts):
//
//   - create-user: users.create for a first visit ("Adding user is not
//     allowed" without it);
//   - view-full-other-user-info: users.info with e-mails and roles of an
//     existing account (finding and adopting it);
//   - edit-other-user-info: users.update keeping name and e-mail in step
//     ("Editing user is not allowed");
//   - user-generate-access-token (createToken true, mode create-token):
//     users.createToken for another user on 2.1–7.x and from 8.0.8/8.7 on
//     (PR #40768);
//   - api-bypass-rate-limit: without it every REST endpoint allows 10
//     calls a minute per IP.
//
// The bot role holds only api-bypass-rate-limit of these. The app adds
// what the rest of the configuration needs (ExtraPermissions).
func ServicePermissions(createToken bool) []Permission {
	need := []Permission{
		{"create-user", "users.create: create the chat account of a first visitor"},
		{"view-full-other-user-info", "users.info: read e-mails and roles of existing chat accounts"},
		{"edit-other-user-info", "users.update: keep names and e-mails in step with the website"},
	}
	if createToken {
		need = append(need, Permission{"user-generate-access-token", "users.createToken: log people in (checked again from Rocket.Chat 8.0.8 and 8.7)"})
	}
	return append(need, Permission{"api-bypass-rate-limit", "REST calls beyond Rocket.Chat's 10 a minute per endpoint"})
}

// RoomKinds says which kinds of rooms provisioning.rooms gives.
type RoomKinds struct {
	Channels, PrivateGroups, Teams bool
}

// ExtraPermissions are the needs of the rest of the configuration: when
// an identity source passes roles, assign-roles (and assign-admin-role when
// admin is among them or among provisioning.roles); with webhooks on,
// delete-user and edit-other-user-active-status (/webhooks/deprovision);
// for provisioning.rooms, the room and team permissions the rooms sync
// uses (RocketChat/Rocket.Chat apps/meteor/app/lib/server/methods/addUsersToRoom.ts,
// apps/meteor/server/methods/removeUserFromRoom.ts,
// apps/meteor/server/api/v1/teams.ts): add-user-to-any-c-room for public
// channels, add-user-to-joined-room for private groups (the service
// account must be in each: a private group exists only for its members,
// and add-user-to-any-p-room is held by no role by default), remove-user
// for both, edit-team-member and view-all-teams for teams.
func ExtraPermissions(rolesManaged, admin, webhooks bool, rooms RoomKinds) []Permission {
	var need []Permission
	if rolesManaged {
		need = append(need, Permission{"assign-roles", "users.update: change roles the identity source passes"})
	}
	if admin {
		need = append(need, Permission{"assign-admin-role", "give chat accounts the admin role"})
	}
	if webhooks {
		need = append(need,
			Permission{"delete-user", "/webhooks/deprovision with action delete"},
			Permission{"edit-other-user-active-status", "/webhooks/deprovision: deactivate chat accounts"})
	}
	if rooms.Channels {
		need = append(need, Permission{"add-user-to-any-c-room", "channels.invite: add people to the public channels of provisioning.rooms"})
	}
	if rooms.PrivateGroups {
		need = append(need, Permission{"add-user-to-joined-room", "groups.invite: add people to the private groups of provisioning.rooms (add the service account to each group)"})
	}
	if rooms.Channels || rooms.PrivateGroups {
		need = append(need, Permission{"remove-user", "channels.kick, groups.kick: remove people from rooms rcsso added them to when their group is gone"})
	}
	if rooms.Teams {
		need = append(need,
			Permission{"edit-team-member", "teams.addMembers, teams.removeMember: the teams of provisioning.rooms"},
			Permission{"view-all-teams", "teams.members: Rocket.Chat lists a team's members only to its members and holders of view-all-teams"})
	}
	return need
}

// ServiceAccount checks, once Rocket.Chat answers, that the minting mode can
// work: the service account's credentials are valid, it holds every
// permission the mode needs (through any of its roles, custom roles
// included: its roles from /me against permissions.listAll), and (mode
// create-token) users.createToken accepts rcsso's call (the secret on 8.x,
// the CREATE_TOKENS_FOR_USERS environment variable on 2.1–7.x; protocol
// spec §4.7). For that it mints a token for the service account itself (no
// permission is needed for oneself) and logs it out at once.
type ServiceAccount struct {
	RC       *rocketchat.Client
	Admin    rcadmin.Auth
	Secret   string
	AdminKey string // config key naming the credentials, for messages
	Mode     string // minting mode, for messages
	Need     []Permission
	// CredentialsOnly checks the service account but not users.createToken
	// (mode password creates users and logs in with their passwords).
	CredentialsOnly bool
	Now             func() time.Time

	version string

	mu     sync.Mutex
	done   bool
	at     time.Time
	result error
}

// Check returns nil when minting can work, an error wrapping mint.ErrIncapable
// when it cannot, or another error when Rocket.Chat cannot be asked right
// now (not cached, so a later call asks again). A success is kept for
// good; a verdict of mint.ErrIncapable for incapableRecheck.
func (c *ServiceAccount) Check(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	if c.done && (c.result == nil || now().Sub(c.at) < incapableRecheck) {
		return c.result
	}
	err := c.check(ctx)
	if err == nil || errors.Is(err, mint.ErrIncapable) {
		c.done, c.at, c.result = true, now(), err
	}
	return err
}

func (c *ServiceAccount) check(ctx context.Context) error {
	info, err := c.RC.Info(ctx)
	if err != nil {
		return err
	}
	c.version = info.Version
	cr, err := c.Admin.Credentials(ctx)
	if err != nil {
		if rocketchat.IsUnauthorized(err) {
			return fmt.Errorf("%w: Rocket.Chat refused the service account's username or password (rocketchat.admin_username/admin_password): %v", mint.ErrIncapable, err)
		}
		return err
	}
	me, err := c.RC.Me(ctx, cr)
	if rocketchat.IsUnauthorized(err) {
		return fmt.Errorf("%w: Rocket.Chat refused the service account credentials (%s); create a new personal access token under My Account → Personal Access Tokens and configure both its user id and token", mint.ErrIncapable, c.AdminKey)
	}
	if err != nil {
		return err
	}
	if err := c.checkPermissions(ctx, cr, me, info); err != nil {
		return err
	}
	if c.CredentialsOnly {
		return nil
	}
	tok, err := c.RC.CreateToken(ctx, cr, me.ID, c.Secret)
	if rocketchat.IsTokensBug(err) {
		return nil // 7.13.x bug #40598: the endpoint works, the minter retries
	}
	if err != nil {
		var rce *rocketchat.Error
		if errors.As(err, &rce) && rce.Status < 500 && rce.Status != 429 {
			return fmt.Errorf("%w: users.createToken was refused (%v). %s", mint.ErrIncapable, err, c.createTokenHint())
		}
		return err
	}
	if err := c.RC.Logout(ctx, tok); err != nil && !rocketchat.IsUnauthorized(err) {
		return err
	}
	return nil
}

// checkPermissions compares the permissions the mode needs with those the
// service account holds through its roles (role _ids from /me against
// permissions.listAll; role names from roles.list for the message). A
// server without permissions.listAll (before 0.73) is not checked.
func (c *ServiceAccount) checkPermissions(ctx context.Context, cr rocketchat.Credentials, me rocketchat.User, info rocketchat.ServerInfo) error {
	perms, err := c.RC.Permissions(ctx, cr)
	var rce *rocketchat.Error
	if errors.As(err, &rce) && rce.Status == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	names := map[string]string{}
	if roles, err := c.RC.Roles(ctx, cr); err == nil {
		for _, r := range roles {
			names[r.ID] = r.DisplayName()
		}
	}
	roleName := func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return id
	}
	var missing []string
	for _, n := range c.Need {
		holders := perms[n.Name]
		if slices.ContainsFunc(me.Roles, func(r string) bool { return slices.Contains(holders, r) }) {
			continue
		}
		held := "no role holds it"
		if len(holders) > 0 {
			hn := make([]string, len(holders))
			for i, h := range holders {
				hn[i] = roleName(h)
			}
			held = "held by " + strings.Join(hn, ", ")
		}
		missing = append(missing, fmt.Sprintf("%s (%s; %s)", n.Name, n.Use, held))
	}
	if len(missing) == 0 {
		return nil
	}
	mine := make([]string, len(me.Roles))
	for i, r := range me.Roles {
		mine[i] = roleName(r)
	}
	where := "Administration → Workspace → Permissions"
	if info.Major() > 0 && info.Major() < 6 {
		where = "Administration → Permissions"
	}
	return fmt.Errorf("%w: the service account %q (roles: %s) lacks %d permission(s) minting mode %s needs: %s. Grant each under %s, ticking it for one of the account's roles (%s) or for a role you add to the account; or give the account the admin role",
		mint.ErrIncapable, me.Username, strings.Join(mine, ", "), len(missing), c.Mode, strings.Join(missing, "; "), where, strings.Join(mine, ", "))
}

func (c *ServiceAccount) createTokenHint() string {
	major := MajorVersion(c.version)
	switch {
	case major >= 8 && c.Secret == "":
		return "Rocket.Chat " + c.version + " needs the secret: start Rocket.Chat with CREATE_TOKENS_FOR_USERS_SECRET=<secret> and set the same value in rocketchat.create_tokens_secret."
	case major >= 8:
		return "On the Rocket.Chat server, CREATE_TOKENS_FOR_USERS_SECRET must equal rocketchat.create_tokens_secret; check both (and restart Rocket.Chat after changing its environment)."
	case major > 0:
		return "Rocket.Chat " + c.version + " only allows it when started with the environment variable CREATE_TOKENS_FOR_USERS=true."
	}
	return "On Rocket.Chat 8.x set CREATE_TOKENS_FOR_USERS_SECRET (and rocketchat.create_tokens_secret to the same value); on 2.1–7.x start Rocket.Chat with CREATE_TOKENS_FOR_USERS=true."
}

// Version is the Rocket.Chat version the last check saw ("" before one).
func (c *ServiceAccount) Version() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.version
}

// MajorVersion is the major number of a Rocket.Chat version string ("8.7.0"
// → 8), 0 when unreadable.
func MajorVersion(v string) int {
	n, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return n
}

// CheckAtStart runs sa.Check when Rocket.Chat answered at start-up: a
// verdict of mint.ErrIncapable refuses start-up (returned), any other
// failure is logged and left to /readyz.
func CheckAtStart(ctx context.Context, d Deps, sa *ServiceAccount) error {
	if d.InfoErr != nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := sa.Check(cctx)
	switch {
	case errors.Is(err, mint.ErrIncapable):
		return err
	case err != nil:
		d.Logger.Warn("could not check Rocket.Chat's token minting yet; /readyz reports it", "err", err)
	default:
		d.Logger.Info("Rocket.Chat accepts rcsso's token minting", "mode", sa.Mode, "rocketchat_version", sa.Version())
	}
	return nil
}
