package doctor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/rcsso/rcsso/internal/rocketchat"
)

// Setup writes into Rocket.Chat what the checks find missing: the iframe
// authentication settings, the Iframe Integration settings for
// website.origins, and the permissions the service account lacks (granted
// to one of its roles). It is what `rcsso setup` runs: Plan first (reading
// only), then Apply when the operator says --apply.
type Setup struct {
	// Target is the deployment (its RC, PublicURL, WebsiteOrigins and the
	// service account Admin).
	Target *Target
	// Admin is the administrator credential setup writes with (needs
	// edit-privileged-setting and access-permissions; admin holds both).
	Admin rocketchat.Credentials
	// Password, when set, is the administrator's password, sent as the
	// two-factor code Rocket.Chat asks of password sessions when a setting
	// is changed.
	Password string
	// Need is what the service account must hold (the minting mode's and
	// the configuration's permissions); empty: no permission is granted.
	Need []Permission
	// Role is the role (name or _id) that receives missing permissions;
	// "" lets Plan choose one of the service account's roles.
	Role string
	// DisableIframe plans only Accounts_iframe_enabled = false: the way
	// back into a Rocket.Chat whose iframe login is broken.
	DisableIframe bool
}

// Change is one write of a plan.
type Change struct {
	// Setting is a setting _id to set to To (was From); Permission a
	// permission _id whose roles become Roles (were FromRoles).
	Setting    string
	From, To   any
	Permission string
	FromRoles  []string
	Roles      []string
	// Why says what it fixes.
	Why string
}

// Names lists what the plan changes, without values ("setting
// Accounts_iframe_enabled, permission create-personal-access-tokens"):
// the audit log's reason for setup --apply.
func (p Plan) Names() string {
	var b strings.Builder
	for i, c := range p.Changes {
		if i > 0 {
			b.WriteString(", ")
		}
		if c.Setting != "" {
			b.WriteString("setting " + c.Setting)
		} else {
			b.WriteString("permission " + c.Permission)
		}
	}
	return b.String()
}

// String is the change as the diff shows it.
func (c Change) String() string {
	if c.Setting != "" {
		return fmt.Sprintf("setting %s: %s → %s (%s)", c.Setting, show(c.From), show(c.To), c.Why)
	}
	return fmt.Sprintf("permission %s: roles [%s] → [%s] (%s)", c.Permission, strings.Join(c.FromRoles, ", "), strings.Join(c.Roles, ", "), c.Why)
}

func show(v any) string {
	switch x := v.(type) {
	case string:
		return quote(x)
	case nil:
		return "(unset)"
	default:
		return fmt.Sprint(x)
	}
}

// Plan is what setup would change, and what it cannot.
type Plan struct {
	Changes []Change
	// Notes are problems setup cannot fix, with what to do instead.
	Notes []string
}

// Diff is the plan as text, one change or note per line.
func (p Plan) Diff() string {
	var b strings.Builder
	for _, c := range p.Changes {
		b.WriteString("  " + c.String() + "\n")
	}
	for _, n := range p.Notes {
		b.WriteString("  note: " + n + "\n")
	}
	return b.String()
}

// unsafeRoles may never receive the service account's permissions: every
// user (or visitor) holds them.
var unsafeRoles = []string{"user", "guest", "anonymous"}

// Plan reads Rocket.Chat (public settings; the service account's roles
// and permissions.listAll with the administrator credential) and returns
// the changes. Errors: Rocket.Chat's, or a Role that does not exist or
// is held by every user.
func (s *Setup) Plan(ctx context.Context) (Plan, error) {
	var p Plan
	set, err := s.Target.RC.PublicSettings(ctx)
	if err != nil {
		return p, fmt.Errorf("reading Rocket.Chat's settings: %w", err)
	}
	want := func(id string, to any, why string) {
		if from, ok := set[id]; !ok || !equalSetting(from, to) {
			p.Changes = append(p.Changes, Change{Setting: id, From: set[id], To: to, Why: why})
		}
	}
	if s.DisableIframe {
		want("Accounts_iframe_enabled", false, "iframe login off: Rocket.Chat shows its own login form again")
		return p, nil
	}
	if frame := s.Target.IframeURL(); !strings.HasPrefix(str(set, "Accounts_iframe_url"), frame+"?") {
		want("Accounts_iframe_url", frame, "the IFrame URL")
	}
	want("Accounts_Iframe_api_url", s.Target.APIURL(), "the API URL")
	if m := str(set, "Accounts_Iframe_api_method"); m != "GET" && m != "POST" {
		want("Accounts_Iframe_api_method", "POST", "rcsso's API URL answers GET and POST")
	}
	want("Accounts_iframe_enabled", true, "iframe login on")
	if origins := s.Target.WebsiteOrigins; len(origins) > 0 {
		want("Iframe_Integration_receive_enable", true, "embed.js's commands heard")
		want("Iframe_Integration_receive_origin", mergeOrigins(str(set, "Iframe_Integration_receive_origin"), origins), "embed.js's origins, exact")
		want("Iframe_Integration_send_enable", true, "events for embed.js")
		if t := str(set, "Iframe_Integration_send_target_origin"); (t == "*" || t == "") && len(origins) == 1 {
			want("Iframe_Integration_send_target_origin", origins[0], "events only to the website")
		}
	}
	if len(s.Need) > 0 {
		if err := s.planPermissions(ctx, &p); err != nil {
			return p, err
		}
	}
	return p, nil
}

// equalSetting compares a setting's value with the wanted one (a "true"
// string counts as true, as Rocket.Chat's client reads it).
func equalSetting(from, to any) bool {
	if b, ok := to.(bool); ok {
		return on(map[string]any{"v": from}, "v") == b && fmt.Sprint(from) == strconv.FormatBool(b)
	}
	return fmt.Sprint(from) == fmt.Sprint(to)
}

// mergeOrigins is the receive origin list with every website origin: the
// existing exact entries kept (trimmed; "*" and empty dropped), the
// missing origins appended, comma-separated without spaces.
func mergeOrigins(current string, origins []string) string {
	var out []string
	for _, o := range strings.Split(current, ",") {
		if o = strings.TrimSpace(o); o != "" && o != "*" && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	for _, o := range origins {
		if !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return strings.Join(out, ",")
}

func (s *Setup) planPermissions(ctx context.Context, p *Plan) error {
	if s.Target.Admin == nil {
		p.Notes = append(p.Notes, "no service account is configured (rocketchat.admin_*): no permission to grant")
		return nil
	}
	cr, err := s.Target.Admin.Credentials(ctx)
	var me rocketchat.User
	if err == nil {
		me, err = s.Target.RC.Me(ctx, cr)
	}
	if err != nil {
		p.Notes = append(p.Notes, "the service account's credentials do not work ("+err.Error()+"): fix "+s.Target.AdminKey+" first, then run setup again to grant its permissions")
		return nil
	}
	perms, err := s.Target.RC.Permissions(ctx, s.Admin)
	if err != nil {
		return fmt.Errorf("reading Rocket.Chat's permissions: %w", err)
	}
	roles, err := s.Target.RC.Roles(ctx, s.Admin)
	if err != nil {
		return fmt.Errorf("reading Rocket.Chat's roles: %w", err)
	}
	info, _ := s.Target.RC.Info(ctx)
	gap := ComparePermissions(s.Need, me, perms, roles, info)
	if len(gap.Missing) == 0 {
		return nil
	}
	role, warn, err := chooseRole(s.Role, me, roles)
	if err != nil {
		return err
	}
	if role == "" {
		p.Notes = append(p.Notes, warn)
		return nil
	}
	for _, n := range gap.Missing {
		if _, ok := perms[n.Name]; !ok {
			p.Notes = append(p.Notes, "Rocket.Chat has no permission "+n.Name+" (an older version?): "+n.Use+" will not work")
			continue
		}
		p.Changes = append(p.Changes, Change{Permission: n.Name, FromRoles: perms[n.Name], Roles: append(slices.Clone(perms[n.Name]), role),
			Why: n.Use + "; granted to role " + roleName(role, roles) + warn})
	}
	return nil
}

func roleName(id string, roles []rocketchat.Role) string {
	for _, r := range roles {
		if r.ID == id {
			return r.DisplayName()
		}
	}
	return id
}

// chooseRole picks the role that receives the service account's missing
// permissions: the one named (by name or _id; it must exist and not be a
// role every user holds), else the account's own role: a custom role
// first, then bot. It returns "" and what to do when there is none, and a
// warning to add to each change when the role is shared (bot).
func chooseRole(named string, me rocketchat.User, roles []rocketchat.Role) (id, warn string, err error) {
	if named != "" {
		for _, r := range roles {
			if r.ID == named || r.Name == named {
				if slices.Contains(unsafeRoles, r.ID) {
					return "", "", fmt.Errorf("--role %s: every user holds that role; name a role only the service account has", named)
				}
				if !slices.Contains(me.Roles, r.ID) {
					warn = "; the service account does not hold role " + r.DisplayName() + ": add it to the account"
				}
				return r.ID, warn, nil
			}
		}
		return "", "", errors.New("--role " + named + ": Rocket.Chat has no such role")
	}
	scope := map[string]string{}
	protected := map[string]bool{}
	for _, r := range roles {
		scope[r.ID], protected[r.ID] = r.Scope, r.Protected
	}
	var custom, bot string
	for _, r := range me.Roles {
		switch {
		case r == "bot":
			bot = r
		case !protected[r] && scope[r] != "Subscriptions" && !slices.Contains(unsafeRoles, r) && r != "admin" && custom == "":
			custom = r
		}
	}
	switch {
	case custom != "":
		return custom, "", nil
	case bot != "":
		return bot, " (every bot gets it: a role of its own is safer)", nil
	}
	return "", "the service account " + strconv.Quote(me.Username) + " has no role of its own to grant its missing permissions to: give it one (Administration → Workspace → Users → the account → Roles, e.g. bot or a custom role) or name one with --role, then run setup again", nil
}

// Apply makes the plan's changes in order (permissions, then settings
// with Accounts_iframe_enabled last, as Plan orders them) and stops at the
// first refusal, saying what was done. Errors name what the administrator
// credential lacks.
func (s *Setup) Apply(ctx context.Context, p Plan) error {
	done := 0
	fail := func(c Change, err error) error {
		hint := ""
		switch {
		case rocketchat.IsForbidden(err) && c.Setting != "":
			hint = ": the administrator credential lacks edit-privileged-setting"
		case rocketchat.IsForbidden(err):
			hint = ": the administrator credential lacks access-permissions"
		case rocketchat.IsUnauthorized(err):
			hint = ": Rocket.Chat refused the administrator credential"
		case strings.Contains(err.Error(), "totp"):
			hint = ": Rocket.Chat wants a two-factor code: use a personal access token created with \"Ignore Two Factor Authentication\", or the administrator's username and password"
		}
		return fmt.Errorf("%s failed after %d of %d changes: %w%s", c, done, len(p.Changes), err, hint)
	}
	var perms, sets []Change
	for _, c := range p.Changes {
		if c.Permission != "" {
			perms = append(perms, c)
		} else {
			sets = append(sets, c)
		}
	}
	for _, c := range perms {
		if err := s.Target.RC.UpdatePermissions(ctx, s.Admin, map[string][]string{c.Permission: c.Roles}); err != nil {
			return fail(c, err)
		}
		done++
	}
	for _, c := range sets {
		if err := s.Target.RC.SetSetting(ctx, s.Admin, c.Setting, c.To, s.Password); err != nil {
			return fail(c, err)
		}
		done++
	}
	return nil
}
