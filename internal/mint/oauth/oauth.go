// Package oauth is minting mode "oauth": rcsso is a Custom OAuth provider
// of Rocket.Chat (internal/oauthprovider), so a token is obtained without
// any Rocket.Chat credentials. Mint issues an access token for the person
// and logs in with it: POST /api/v1/login {serviceName, accessToken,
// expiresIn} (protocol spec §4.1). Rocket.Chat calls rcsso's identity route
// with the token and finds, merges or creates the user itself; the answer's
// userId is the Rocket.Chat user, which the broker records.
package oauth

import (
	"context"
	"errors"
	"fmt"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/store"
)

// Issuer issues OAuth access tokens for identities: token and lifetime in
// seconds (*oauthprovider.Provider).
type Issuer interface {
	IssueAccessToken(id identity.Identity) (token string, expiresIn int)
}

// Minter implements mint.Minter, and mint.Validator and mint.Revoker
// through the embedded mint.ResumeSession.
type Minter struct {
	// ResumeSession supplies RC, Validate and Revoke.
	mint.ResumeSession
	Issuer Issuer
	// ServiceName is the Custom OAuth service's name in Rocket.Chat.
	ServiceName string
}

// Mint implements mint.Minter: a new resume token for req.Identity, with
// the Rocket.Chat user id from the login answer (req.Link.UserID may be
// empty). Errors wrap *rocketchat.Error: a 401 says Rocket.Chat refused the
// login (unknown service, identity route unreachable from Rocket.Chat,
// username taken without "Merge users", 2FA, inactive user).
func (m *Minter) Mint(ctx context.Context, req mint.Request) (mint.Token, error) {
	if req.Identity.Subject == "" {
		return mint.Token{}, errors.New("oauth: the identity has no subject")
	}
	tok, expiresIn := m.Issuer.IssueAccessToken(req.Identity)
	res, err := m.RC.LoginOAuth(ctx, m.ServiceName, tok, expiresIn)
	if err != nil {
		return mint.Token{}, fmt.Errorf("oauth: logging in through Custom OAuth service %q: %w", m.ServiceName, err)
	}
	return mint.Token{Value: res.AuthToken, Kind: mint.LoginToken, UserID: res.UserID}, nil
}

// Provisioner implements mint.Provisioner for mode oauth: Rocket.Chat
// creates or merges the user during the login, so there is nothing to do
// beforehand and no admin call. Ensure returns the stored link, or a link
// with only the subject (no Rocket.Chat user id yet) for a person never
// minted for.
type Provisioner struct {
	Store store.Store
}

// Ensure implements mint.Provisioner. Errors are store failures.
func (p Provisioner) Ensure(ctx context.Context, id identity.Identity) (store.Link, error) {
	l, err := p.Store.GetLink(ctx, id.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return store.Link{Subject: id.Subject}, nil
	}
	if err != nil {
		return store.Link{}, err
	}
	return l, nil
}
