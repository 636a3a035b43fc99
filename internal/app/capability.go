package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
)

// ErrIncapable means Rocket.Chat answers but the chosen minting mode cannot
// work with it; the message says what to change on which side. It is
// mint.ErrIncapable, so the HTTP error table knows it too.
var ErrIncapable = mint.ErrIncapable

// incapableRecheck is how long a "cannot mint" verdict is kept before
// /readyz asks Rocket.Chat again (an administrator may have fixed it).
const incapableRecheck = time.Minute

// permissionNeed is a Rocket.Chat permission the service account needs and
// what rcsso does with it.
type permissionNeed struct {
	name, use string
}

// neededPermissions lists the permissions the service account needs in
// minting mode create-token or password, given the rest of the
// configuration (protocol spec §4.5–§4.15; RocketChat/Rocket.Chat
// apps/meteor/app/lib/server/functions/saveUser/validateUserData.ts and
// validateUserEditing.ts, apps/meteor/server/meteor-methods/auth/createToken.ts):
//
//   - create-user: users.create for a first visit ("Adding user is not
//     allowed" without it);
//   - view-full-other-user-info: users.info with e-mails and roles of an
//     existing account (finding and adopting it);
//   - edit-other-user-info: users.update keeping name and e-mail in step
//     ("Editing user is not allowed");
//   - user-generate-access-token (create-token only): users.createToken for
//     another user on 2.1–7.x and from 8.0.8/8.7 on (PR #40768);
//   - api-bypass-rate-limit: without it every REST endpoint allows 10
//     calls a minute per IP;
//   - assign-roles, when an identity source passes roles (claims.roles,
//     role_map, groups_header); assign-admin-role when one of those roles
//     or provisioning.roles is admin;
//   - delete-user and edit-other-user-active-status, when webhooks are on
//     (/webhooks/deprovision deletes or deactivates).
//
// The bot role holds only api-bypass-rate-limit of these.
func neededPermissions(cfg config.Config) []permissionNeed {
	need := []permissionNeed{
		{"create-user", "users.create: create the chat account of a first visitor"},
		{"view-full-other-user-info", "users.info: read e-mails and roles of existing chat accounts"},
		{"edit-other-user-info", "users.update: keep names and e-mails in step with the website"},
	}
	if cfg.Minting.Mode == "create-token" {
		need = append(need, permissionNeed{"user-generate-access-token", "users.createToken: log people in (checked again from Rocket.Chat 8.0.8 and 8.7)"})
	}
	need = append(need, permissionNeed{"api-bypass-rate-limit", "REST calls beyond Rocket.Chat's 10 a minute per endpoint"})
	roles, admin := false, slices.Contains(cfg.Provision.Roles, "admin")
	sources, _ := sourceConfigs(cfg.Identity)
	for _, s := range sources {
		if rs, ok := s.(identity.RoleSource); ok {
			managed, a := rs.ManagesRoles()
			roles, admin = roles || managed, admin || a
		}
	}
	if roles {
		need = append(need, permissionNeed{"assign-roles", "users.update: change roles the identity source passes"})
	}
	if admin {
		need = append(need, permissionNeed{"assign-admin-role", "give chat accounts the admin role"})
	}
	if cfg.Webhooks.Secret != "" || cfg.Webhooks.SecretFile != "" {
		need = append(need,
			permissionNeed{"delete-user", "/webhooks/deprovision with action delete"},
			permissionNeed{"edit-other-user-active-status", "/webhooks/deprovision: deactivate chat accounts"})
	}
	return need
}

// capability checks, once Rocket.Chat answers, that the minting mode can
// work: the service account's credentials are valid, it holds every
// permission the mode needs (through any of its roles, custom roles
// included: its roles from /me against permissions.listAll), and (mode
// create-token) users.createToken accepts rcsso's call (the secret on 8.x,
// the CREATE_TOKENS_FOR_USERS environment variable on 2.1–7.x; protocol
// spec §4.7). For that it mints a token for the service account itself (no
// permission is needed for oneself) and logs it out at once.
type capability struct {
	rc       *rocketchat.Client
	admin    rcadmin.Auth
	secret   string
	version  string
	adminKey string // config key naming the credentials, for messages
	mode     string // minting mode, for messages
	need     []permissionNeed
	// credentialsOnly checks the service account but not users.createToken
	// (mode password creates users and logs in with their passwords).
	credentialsOnly bool
	now             func() time.Time

	mu     sync.Mutex
	done   bool
	at     time.Time
	result error
}

// Check returns nil when minting can work, an error wrapping ErrIncapable
// when it cannot, or another error when Rocket.Chat cannot be asked right
// now (not cached, so a later call asks again). A success is kept for
// good; a verdict of ErrIncapable for incapableRecheck.
func (c *capability) Check(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now
	if c.now != nil {
		now = c.now
	}
	if c.done && (c.result == nil || now().Sub(c.at) < incapableRecheck) {
		return c.result
	}
	err := c.check(ctx)
	if err == nil || errors.Is(err, ErrIncapable) {
		c.done, c.at, c.result = true, now(), err
	}
	return err
}

func (c *capability) check(ctx context.Context) error {
	info, err := c.rc.Info(ctx)
	if err != nil {
		return err
	}
	c.version = info.Version
	cr, err := c.admin.Credentials(ctx)
	if err != nil {
		if rocketchat.IsUnauthorized(err) {
			return fmt.Errorf("%w: Rocket.Chat refused the service account's username or password (rocketchat.admin_username/admin_password): %v", ErrIncapable, err)
		}
		return err
	}
	me, err := c.rc.Me(ctx, cr)
	if rocketchat.IsUnauthorized(err) {
		return fmt.Errorf("%w: Rocket.Chat refused the service account credentials (%s); create a new personal access token under My Account → Personal Access Tokens and configure both its user id and token", ErrIncapable, c.adminKey)
	}
	if err != nil {
		return err
	}
	if err := c.checkPermissions(ctx, cr, me, info); err != nil {
		return err
	}
	if c.credentialsOnly {
		return nil
	}
	tok, err := c.rc.CreateToken(ctx, cr, me.ID, c.secret)
	if rocketchat.IsTokensBug(err) {
		return nil // 7.13.x bug #40598: the endpoint works, the minter retries
	}
	if err != nil {
		var rce *rocketchat.Error
		if errors.As(err, &rce) && rce.Status < 500 && rce.Status != 429 {
			return fmt.Errorf("%w: users.createToken was refused (%v). %s", ErrIncapable, err, c.createTokenHint())
		}
		return err
	}
	if err := c.rc.Logout(ctx, tok); err != nil && !rocketchat.IsUnauthorized(err) {
		return err
	}
	return nil
}

// checkPermissions compares the permissions the mode needs with those the
// service account holds through its roles (role _ids from /me against
// permissions.listAll; role names from roles.list for the message). A
// server without permissions.listAll (before 0.73) is not checked.
func (c *capability) checkPermissions(ctx context.Context, cr rocketchat.Credentials, me rocketchat.User, info rocketchat.ServerInfo) error {
	perms, err := c.rc.Permissions(ctx, cr)
	var rce *rocketchat.Error
	if errors.As(err, &rce) && rce.Status == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	names := map[string]string{}
	if roles, err := c.rc.Roles(ctx, cr); err == nil {
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
	for _, n := range c.need {
		holders := perms[n.name]
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
		missing = append(missing, fmt.Sprintf("%s (%s; %s)", n.name, n.use, held))
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
		ErrIncapable, me.Username, strings.Join(mine, ", "), len(missing), c.mode, strings.Join(missing, "; "), where, strings.Join(mine, ", "))
}

func (c *capability) createTokenHint() string {
	major := majorVersion(c.version)
	switch {
	case major >= 8 && c.secret == "":
		return "Rocket.Chat " + c.version + " needs the secret: start Rocket.Chat with CREATE_TOKENS_FOR_USERS_SECRET=<secret> and set the same value in rocketchat.create_tokens_secret."
	case major >= 8:
		return "On the Rocket.Chat server, CREATE_TOKENS_FOR_USERS_SECRET must equal rocketchat.create_tokens_secret; check both (and restart Rocket.Chat after changing its environment)."
	case major > 0:
		return "Rocket.Chat " + c.version + " only allows it when started with the environment variable CREATE_TOKENS_FOR_USERS=true."
	}
	return "On Rocket.Chat 8.x set CREATE_TOKENS_FOR_USERS_SECRET (and rocketchat.create_tokens_secret to the same value); on 2.1–7.x start Rocket.Chat with CREATE_TOKENS_FOR_USERS=true."
}
