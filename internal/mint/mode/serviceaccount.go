package mode

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rcsso/rcsso/internal/doctor"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
)

// incapableRecheck is how long a "cannot mint" verdict is kept before
// /readyz asks Rocket.Chat again (an administrator may have fixed it).
const incapableRecheck = time.Minute

// Permission is a Rocket.Chat permission the service account needs and
// what rcsso does with it (doctor.Permission).
type Permission = doctor.Permission

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
		{Name: "create-user", Use: "users.create: create the chat account of a first visitor"},
		{Name: "view-full-other-user-info", Use: "users.info: read e-mails and roles of existing chat accounts"},
		{Name: "edit-other-user-info", Use: "users.update: keep names and e-mails in step with the website"},
	}
	if createToken {
		need = append(need, Permission{Name: "user-generate-access-token", Use: "users.createToken: log people in (checked again from Rocket.Chat 8.0.8 and 8.7)"})
	}
	return append(need, Permission{Name: "api-bypass-rate-limit", Use: "REST calls beyond Rocket.Chat's 10 a minute per endpoint"})
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
		need = append(need, Permission{Name: "assign-roles", Use: "users.update: change roles the identity source passes"})
	}
	if admin {
		need = append(need, Permission{Name: "assign-admin-role", Use: "give chat accounts the admin role"})
	}
	if webhooks {
		need = append(need,
			Permission{Name: "delete-user", Use: "/webhooks/deprovision with action delete"},
			Permission{Name: "edit-other-user-active-status", Use: "/webhooks/deprovision: deactivate chat accounts"})
	}
	if rooms.Channels {
		need = append(need, Permission{Name: "add-user-to-any-c-room", Use: "channels.invite: add people to the public channels of provisioning.rooms"})
	}
	if rooms.PrivateGroups {
		need = append(need, Permission{Name: "add-user-to-joined-room", Use: "groups.invite: add people to the private groups of provisioning.rooms (add the service account to each group)"})
	}
	if rooms.Channels || rooms.PrivateGroups {
		need = append(need, Permission{Name: "remove-user", Use: "channels.kick, groups.kick: remove people from rooms rcsso added them to when their group is gone"})
	}
	if rooms.Teams {
		need = append(need,
			Permission{Name: "edit-team-member", Use: "teams.addMembers, teams.removeMember: the teams of provisioning.rooms"},
			Permission{Name: "view-all-teams", Use: "teams.members: Rocket.Chat lists a team's members only to its members and holders of view-all-teams"})
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

	mu2     sync.Mutex // guards version
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
	gap, err := c.Gap(ctx)
	if err != nil {
		return err
	}
	if len(gap.Missing) > 0 {
		return fmt.Errorf("%w: %s", mint.ErrIncapable, gap.Message(c.Mode))
	}
	if c.CredentialsOnly {
		return nil
	}
	problem, fix, err := c.CreateTokenProblem(ctx)
	if err != nil {
		return err
	}
	if problem != "" {
		return fmt.Errorf("%w: %s. %s", mint.ErrIncapable, problem, fix)
	}
	return nil
}

// credentials returns the service account's credentials and /me, with
// mint.ErrIncapable when Rocket.Chat refuses them.
func (c *ServiceAccount) credentials(ctx context.Context) (rocketchat.Credentials, rocketchat.User, error) {
	cr, err := c.Admin.Credentials(ctx)
	if err != nil {
		if rocketchat.IsUnauthorized(err) {
			return cr, rocketchat.User{}, fmt.Errorf("%w: Rocket.Chat refused the service account's username or password (rocketchat.admin_username/admin_password): %v", mint.ErrIncapable, err)
		}
		return cr, rocketchat.User{}, err
	}
	me, err := c.RC.Me(ctx, cr)
	if rocketchat.IsUnauthorized(err) {
		return cr, me, fmt.Errorf("%w: Rocket.Chat refused the service account credentials (%s); create a new personal access token under My Account → Personal Access Tokens and configure both its user id and token", mint.ErrIncapable, c.AdminKey)
	}
	return cr, me, err
}

// Gap compares the permissions the mode needs (Need) with those the
// service account holds through its roles (role _ids from /me against
// permissions.listAll; role names from roles.list for the message;
// doctor.ComparePermissions). A server without permissions.listAll (404,
// before 0.73) is not checked: an empty gap. Errors: mint.ErrIncapable
// when Rocket.Chat refuses the credentials, else Rocket.Chat's.
func (c *ServiceAccount) Gap(ctx context.Context) (doctor.PermissionGap, error) {
	info, err := c.RC.Info(ctx)
	if err != nil {
		return doctor.PermissionGap{}, err
	}
	c.mu2.Lock()
	c.version = info.Version
	c.mu2.Unlock()
	cr, me, err := c.credentials(ctx)
	if err != nil {
		return doctor.PermissionGap{}, err
	}
	perms, err := c.RC.Permissions(ctx, cr)
	var rce *rocketchat.Error
	if errors.As(err, &rce) && rce.Status == http.StatusNotFound {
		return doctor.PermissionGap{Username: me.Username}, nil
	}
	if err != nil {
		return doctor.PermissionGap{}, err
	}
	roles, _ := c.RC.Roles(ctx, cr)
	return doctor.ComparePermissions(c.Need, me, perms, roles, info), nil
}

// CreateTokenProblem checks that users.createToken accepts rcsso's call
// (the secret on 8.x, the CREATE_TOKENS_FOR_USERS environment variable on
// 2.1–7.x; protocol spec §4.7) by minting a token for the service account
// itself (no permission is needed for oneself) and logging it out at once.
// It returns what is wrong and what to change where ("" when it works), or
// an error when Rocket.Chat cannot be asked.
func (c *ServiceAccount) CreateTokenProblem(ctx context.Context) (problem, fix string, err error) {
	if _, err := c.RC.Info(ctx); err != nil {
		return "", "", err
	}
	cr, me, err := c.credentials(ctx)
	if err != nil {
		return "", "", err
	}
	tok, err := c.RC.CreateToken(ctx, cr, me.ID, c.Secret)
	if rocketchat.IsTokensBug(err) {
		return "", "", nil // 7.13.x bug #40598: the endpoint works, the minter retries
	}
	if err != nil {
		var rce *rocketchat.Error
		if errors.As(err, &rce) && rce.Status < 500 && rce.Status != 429 {
			return fmt.Sprintf("users.createToken was refused (%v)", err), c.createTokenHint(), nil
		}
		return "", "", err
	}
	if err := c.RC.Logout(ctx, tok); err != nil && !rocketchat.IsUnauthorized(err) {
		return "", "", err
	}
	return "", "", nil
}

func (c *ServiceAccount) createTokenHint() string {
	c.mu2.Lock()
	version := c.version
	c.mu2.Unlock()
	major := MajorVersion(version)
	switch {
	case major >= 8 && c.Secret == "":
		return "Rocket.Chat " + version + " needs the secret: start Rocket.Chat with CREATE_TOKENS_FOR_USERS_SECRET=<secret> and set the same value in rocketchat.create_tokens_secret."
	case major >= 8:
		return "On the Rocket.Chat server, CREATE_TOKENS_FOR_USERS_SECRET must equal rocketchat.create_tokens_secret; check both (and restart Rocket.Chat after changing its environment)."
	case major > 0:
		return "Rocket.Chat " + version + " only allows it when started with the environment variable CREATE_TOKENS_FOR_USERS=true."
	}
	return "On Rocket.Chat 8.x set CREATE_TOKENS_FOR_USERS_SECRET (and rocketchat.create_tokens_secret to the same value); on 2.1–7.x start Rocket.Chat with CREATE_TOKENS_FOR_USERS=true."
}

// Checks are the service account's doctor checks, the functions behind
// its start-up refusal: "permissions" (Gap: credentials and every
// permission in Need) and, unless CredentialsOnly, "create-token"
// (CreateTokenProblem). A refusal is FAIL; a Rocket.Chat that cannot be
// asked is WARN (the rocketchat check says why).
func (c *ServiceAccount) Checks() []doctor.Check {
	out := []doctor.Check{{Name: "permissions", Run: func(ctx context.Context, _ *doctor.Probe) []doctor.Result {
		gap, err := c.Gap(ctx)
		switch {
		case errors.Is(err, mint.ErrIncapable):
			return []doctor.Result{{Status: doctor.Fail, Message: incapableText(err), Fix: "configure a working personal access token in " + c.AdminKey}}
		case err != nil:
			return []doctor.Result{{Status: doctor.Warn, Message: "could not check the service account: " + err.Error()}}
		case len(gap.Missing) > 0:
			return []doctor.Result{{Status: doctor.Fail, Message: gap.Found(c.Mode), Fix: gap.Fix() + "; or let rcsso setup --config FILE --apply grant them"}}
		}
		names := make([]string, len(c.Need))
		for i, n := range c.Need {
			names[i] = n.Name
		}
		return []doctor.Result{{Status: doctor.OK, Message: fmt.Sprintf("the service account %q holds every permission minting mode %s needs (%s)", gap.Username, c.Mode, strings.Join(names, ", "))}}
	}}}
	if c.CredentialsOnly {
		return out
	}
	return append(out, doctor.Check{Name: "create-token", Run: func(ctx context.Context, _ *doctor.Probe) []doctor.Result {
		problem, fix, err := c.CreateTokenProblem(ctx)
		switch {
		case errors.Is(err, mint.ErrIncapable):
			return []doctor.Result{{Status: doctor.Fail, Message: incapableText(err), Fix: "configure a working personal access token in " + c.AdminKey}}
		case err != nil:
			return []doctor.Result{{Status: doctor.Warn, Message: "could not try users.createToken: " + err.Error()}}
		case problem != "":
			return []doctor.Result{{Status: doctor.Fail, Message: problem, Fix: fix}}
		}
		return []doctor.Result{{Status: doctor.OK, Message: "users.createToken accepts rcsso's call (CREATE_TOKENS_FOR_USERS(_SECRET) matches)"}}
	}})
}

// incapableText is an mint.ErrIncapable error without its prefix.
func incapableText(err error) string {
	return strings.TrimPrefix(err.Error(), mint.ErrIncapable.Error()+": ")
}

// Version is the Rocket.Chat version the last check saw ("" before one).
func (c *ServiceAccount) Version() string {
	c.mu2.Lock()
	defer c.mu2.Unlock()
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

// OptionalNeed is what an optional service account (modes oauth, mongo-*)
// must hold: the configuration's needs, when one is configured.
func OptionalNeed(d Deps) []Permission {
	if d.Admin == nil {
		return nil
	}
	return d.Permissions
}

// DeprovisionChecks are the permission checks of a mode whose service
// account is optional (oauth, mongo-*): with credentials configured and
// permissions the rest of the configuration needs (d.Permissions:
// deprovisioning webhooks, roles), the account must hold them.
func DeprovisionChecks(d Deps, modeName string) []doctor.Check {
	if d.Admin == nil || len(d.Permissions) == 0 {
		return nil
	}
	sa := &ServiceAccount{RC: d.RC, Admin: d.Admin, AdminKey: d.AdminKey, Mode: modeName, CredentialsOnly: true, Need: d.Permissions}
	return sa.Checks()
}
