package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
)

// ErrIncapable means Rocket.Chat answers but the chosen minting mode cannot
// work with it; the message says what to change on which side.
var ErrIncapable = errors.New("Rocket.Chat cannot mint tokens for rcsso")

// capability checks, once Rocket.Chat answers, that create-token minting
// can work: the service account's credentials are valid and
// users.createToken accepts rcsso's call (the secret on 8.x, the
// CREATE_TOKENS_FOR_USERS environment variable on 2.1–7.x; protocol spec
// §4.7). It mints a token for the service account itself (no permission is
// needed for oneself) and logs it out at once.
type capability struct {
	rc       *rocketchat.Client
	admin    rcadmin.Auth
	secret   string
	version  string
	adminKey string // config key naming the credentials, for messages
	// credentialsOnly checks the service account but not users.createToken
	// (mode password creates users and logs in with their passwords).
	credentialsOnly bool

	mu     sync.Mutex
	done   bool
	result error
}

// Check returns nil when minting can work, an error wrapping ErrIncapable
// when it cannot, or another error when Rocket.Chat cannot be asked right
// now (not cached, so a later call asks again).
func (c *capability) Check(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done {
		return c.result
	}
	err := c.check(ctx)
	if err == nil || errors.Is(err, ErrIncapable) {
		c.done, c.result = true, err
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
	if c.credentialsOnly {
		return c.checkRoles(me)
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
	return c.checkRoles(me)
}

// checkRoles: the service account needs create-user and friends (admin, or
// a role given those permissions; bot brings api-bypass-rate-limit).
func (c *capability) checkRoles(me rocketchat.User) error {
	if !slices.Contains(me.Roles, "admin") && !slices.Contains(me.Roles, "bot") {
		return fmt.Errorf("%w: the service account %q has roles %v; give it a role with the permissions create-user, view-full-other-user-info, edit-other-user-info, user-generate-access-token and api-bypass-rate-limit (the bot role plus those, or admin)",
			ErrIncapable, me.Username, me.Roles)
	}
	return nil
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
