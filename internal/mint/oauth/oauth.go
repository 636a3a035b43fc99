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
	"strings"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rocketchat"
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
	// Carriers, when set, chooses the service to log in through at run
	// time (Rocket.Chat 9.0's Custom OAuth gate; see Detector) instead of
	// ServiceName.
	Carriers *Detector
}

// Mint implements mint.Minter: a new resume token for req.Identity, with
// the Rocket.Chat user id from the login answer (req.Link.UserID may be
// empty). Errors wrap *rocketchat.Error: a 401 says Rocket.Chat refused the
// login (unknown service, identity route unreachable from Rocket.Chat,
// username taken without "Merge users", 2FA, inactive user). With Carriers,
// a failed login that may mean the carrier went away (a 5xx, or a refusal)
// makes Carriers detect again (bounded by its RecheckAfter): a new carrier
// is tried once, no carrier left is an error wrapping mint.ErrIncapable.
func (m *Minter) Mint(ctx context.Context, req mint.Request) (mint.Token, error) {
	if req.Identity.Subject == "" {
		return mint.Token{}, errors.New("oauth: the identity has no subject")
	}
	service := m.ServiceName
	if m.Carriers != nil {
		c, err := m.Carriers.Current(ctx)
		if err != nil {
			return mint.Token{}, fmt.Errorf("oauth: %w", err)
		}
		service = c.Service
	}
	t, err := m.login(ctx, req, service)
	if err == nil || m.Carriers == nil || !carrierSuspect(err) || !m.Carriers.Stale() {
		return t, err
	}
	c, derr := m.Carriers.Current(ctx)
	switch {
	case derr != nil:
		return mint.Token{}, fmt.Errorf("oauth: %w (the login through %q failed: %w)", derr, service, err)
	case c.Service == service:
		return mint.Token{}, err
	}
	return m.login(ctx, req, c.Service)
}

func (m *Minter) login(ctx context.Context, req mint.Request, service string) (mint.Token, error) {
	tok, expiresIn := m.Issuer.IssueAccessToken(req.Identity)
	res, err := m.RC.LoginOAuth(ctx, service, tok, expiresIn)
	if err != nil {
		return mint.Token{}, fmt.Errorf("oauth: logging in through OAuth service %q: %w", service, err)
	}
	return mint.Token{Value: res.AuthToken, Kind: mint.LoginToken, UserID: res.UserID}, nil
}

// carrierSuspect reports login failures that a vanished carrier explains:
// Rocket.Chat answers an unregistered or unconfigured access-token service
// with a plain Error — 500 "Internal server error" from 7.5/8.x on, a 401
// "Unexpected AccessToken service" or "Service not configured" before.
func carrierSuspect(err error) bool {
	var e *rocketchat.Error
	if !errors.As(err, &e) || e.Status == 0 {
		return false
	}
	if e.Status >= 500 {
		return true
	}
	m := strings.ToLower(e.Message)
	return strings.Contains(m, "accesstoken service") || strings.Contains(m, "not configured") || e.Status == 401 && e.Message == ""
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
