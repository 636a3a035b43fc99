// Package password is minting mode "password", the last resort for
// Rocket.Chat servers where neither users.createToken (no
// CREATE_TOKENS_FOR_USERS[_SECRET]) nor a Custom OAuth service nor MongoDB
// access is possible. Every person gets their own random password, created
// with their Rocket.Chat user and kept by rcsso sealed (AES-GCM) in its
// store — never one password shared by all users. rcsso logs in with it:
// POST /api/v1/login {"user","password"} (protocol spec §4.1).
//
// Limits to know: Rocket.Chat rate-limits /api/v1/login to 10 calls per
// minute per client IP with no bypass (§4.14), so rcsso can mint at most ten
// tokens a minute in this mode (cached tokens are reused, so steady state is
// unaffected); users get an unverified e-mail, because Rocket.Chat's e-mail
// 2FA auto opt-in would otherwise demand a code at every password login
// (§2.1); and only users rcsso created can be logged in (it never learns or
// resets anybody else's password).
package password

import (
	"context"
	"fmt"

	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
)

// ErrNoPassword means rcsso holds no password for the person: their
// Rocket.Chat user was not created by rcsso in this mode.
// It wraps mint.ErrCannotMint.
var ErrNoPassword = fmt.Errorf("password mode: rcsso holds no password for this Rocket.Chat user (it did not create it); use minting mode create-token or oauth for existing users: %w", mint.ErrCannotMint)

// Minter implements mint.Minter, and mint.Validator and mint.Revoker
// through the embedded mint.ResumeSession.
type Minter struct {
	// ResumeSession supplies RC, Validate and Revoke.
	mint.ResumeSession
	Sealer *sealer.Sealer
}

// Mint implements mint.Minter.
func (m *Minter) Mint(ctx context.Context, req mint.Request) (mint.Token, error) {
	if req.Link.Secret == nil {
		return mint.Token{}, ErrNoPassword
	}
	pw, err := m.Sealer.Open(req.Link.Secret, req.Link.Subject)
	if err != nil {
		return mint.Token{}, fmt.Errorf("password mode: cannot open the stored password (encryption key changed?): %w", err)
	}
	res, err := m.RC.LoginPassword(ctx, req.Link.Username, string(pw))
	if rocketchat.IsUnauthorized(err) {
		return mint.Token{}, fmt.Errorf("password mode: Rocket.Chat refused the stored password of %q (changed in Rocket.Chat, or e-mail 2FA enabled for the user): %w", req.Link.Username, err)
	}
	if err != nil {
		return mint.Token{}, fmt.Errorf("password mode: %w", err)
	}
	return mint.Token{Value: res.AuthToken, Kind: mint.LoginToken, UserID: res.UserID}, nil
}
