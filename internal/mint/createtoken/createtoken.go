// Package createtoken is minting mode "create-token": POST
// /api/v1/users.createToken with the service account's credentials
// (protocol spec §4.7). Rocket.Chat 8.x requires the body field "secret" equal
// to its CREATE_TOKENS_FOR_USERS_SECRET; 2.1–7.x require the environment
// variable CREATE_TOKENS_FOR_USERS=true instead and take no secret. On 7.13.x
// a user without tokens hits bug #40598 ("reading 'tokens'"); the call is
// retried once.
package createtoken

import (
	"context"
	"fmt"

	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
)

// Minter implements mint.Minter, and mint.Validator and mint.Revoker
// through the embedded mint.ResumeSession.
type Minter struct {
	// ResumeSession supplies RC, Validate and Revoke.
	mint.ResumeSession
	Admin rcadmin.Auth
	// Secret is CREATE_TOKENS_FOR_USERS_SECRET; sent only when non-empty
	// (set it empty for Rocket.Chat before 8.0).
	Secret string
}

// Mint implements mint.Minter.
func (m *Minter) Mint(ctx context.Context, req mint.Request) (mint.Token, error) {
	call := func(cr rocketchat.Credentials) (rocketchat.Credentials, error) {
		return m.RC.CreateToken(ctx, cr, req.Link.UserID, m.Secret)
	}
	c, err := rcadmin.Do(ctx, m.Admin, call)
	if rocketchat.IsTokensBug(err) {
		c, err = rcadmin.Do(ctx, m.Admin, call)
	}
	if err != nil {
		return mint.Token{}, fmt.Errorf("create-token: %w", err)
	}
	return mint.Token{Value: c.AuthToken, Kind: mint.LoginToken, UserID: c.UserID}, nil
}
