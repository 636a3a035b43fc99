// Package mint obtains Rocket.Chat tokens for website visitors and reuses
// them. A Minter is one way of obtaining a token (mode create-token, …); the
// Broker in front of it caches one token per person, encrypted at rest,
// re-validates it lazily and mints again only when Rocket.Chat rejects it, so
// page views never eat into Rocket.Chat's 50-token cap (protocol spec §2.2).
package mint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/store"
)

// Kind is the API URL's answer key for a token.
type Kind string

// Token kinds (API URL contract, protocol spec §1.4).
const (
	// LoginToken is a resume token: {"loginToken": …}; works on web,
	// desktop and mobile clients.
	LoginToken Kind = "loginToken"
	// IframeToken is a services.iframe.token value: {"token": …}; web and
	// desktop only.
	IframeToken Kind = "token"
)

// Token is a Rocket.Chat token for one user.
type Token struct {
	Value  string
	Kind   Kind
	UserID string
}

// ErrRejected means Rocket.Chat no longer accepts the token.
var ErrRejected = errors.New("mint: Rocket.Chat rejected the cached token")

// ErrChatLoggedOut means the person logged out on the Rocket.Chat side: the
// API URL answers 401 instead of logging them straight back in (protocol
// spec §1.7) until they log in on the website again or ask for the chat
// on the IFrame URL (Broker.Resume).
var ErrChatLoggedOut = errors.New("mint: the person logged out of the chat")

// ErrDeactivated means the person's Rocket.Chat user exists but is
// deactivated (an administrator, or a deprovision webhook, turned it off):
// no token can log them in, and the IFrame URL says so instead of offering
// a login that cannot work.
var ErrDeactivated = errors.New("mint: the person's Rocket.Chat user is deactivated")

// ErrConflict means Rocket.Chat already has a different person with the
// identity's username and e-mail, and rcsso will not take that account over
// (provision.ErrConflict; every minting mode's conflict wraps it). The
// Broker's audit log records it as a refusal.
var ErrConflict = errors.New("provision: Rocket.Chat has a conflicting user")

// ErrReservedEmail means an identity came with an e-mail address in the
// placeholder domain, which only rcsso hands out (provision.ErrReservedEmail).
// It wraps ErrConflict.
var ErrReservedEmail = fmt.Errorf("%w: the e-mail address is in the placeholder domain, which is reserved for rcsso", ErrConflict)

// UserState is what Rocket.Chat says about a linked user.
type UserState int

// User states (UserChecker).
const (
	// UserActive: the user exists and may log in.
	UserActive UserState = iota
	// UserDeactivated: the user exists with active: false.
	UserDeactivated
	// UserGone: Rocket.Chat has no user with that id (deleted, or the
	// server was restored from a backup older than the user).
	UserGone
)

// UserChecker is an optional Provisioner capability: it asks Rocket.Chat
// about the linked user (one call). The Broker uses it only when something
// failed (a cached token was rejected, a mint was refused), to tell a
// chat-side logout from a user that vanished or was deactivated.
type UserChecker interface {
	CheckUser(ctx context.Context, l store.Link) (UserState, error)
}

// ErrUnavailable means the minting mode's own backend cannot be reached
// right now: Rocket.Chat's MongoDB in modes mongo-resume and mongo-iframe
// (no server selectable, connection dropped, client closed). Modes wrap
// their outage errors with it, so the server answers 503 without knowing
// the mode. Rocket.Chat's REST API being down is rocketchat.IsUnavailable.
var ErrUnavailable = errors.New("mint: the minting mode's backend cannot be reached")

// ErrCannotMint means the minting mode cannot obtain a token for this
// person as things are configured (mode password holds no password for a
// user it did not create; mode mongo-iframe meets a user with e-mail
// two-factor authentication). The site administrator must change a
// setting; retrying does not help. Modes wrap their specific error with it.
var ErrCannotMint = errors.New("mint: the minting mode cannot obtain a token for this person")

// ThrottledError means a new token for this person was minted less than
// the minimum interval ago; minting again could only push their other
// sessions out of Rocket.Chat's 50-token list.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("mint: a token was minted for this person moments ago; retry in %s", e.RetryAfter.Round(time.Second))
}

// Request is what a Minter gets: the person and their link. Link.UserID is
// empty for modes in which Rocket.Chat creates the user itself (oauth); the
// returned Token.UserID is then authoritative and the Broker records it.
type Request struct {
	Identity identity.Identity
	Link     store.Link
}

// Minter obtains a new token for the linked Rocket.Chat user.
type Minter interface {
	// Mint returns a fresh token. Errors are upstream failures.
	Mint(ctx context.Context, req Request) (Token, error)
}

// Validator is an optional Minter capability: asks Rocket.Chat whether a
// token still works. ErrRejected when it does not; other errors mean "cannot
// tell right now".
type Validator interface {
	Validate(ctx context.Context, t Token) error
}

// Revoker is an optional Minter capability: ends the Rocket.Chat session a
// token belongs to. A token Rocket.Chat no longer knows is not an error.
type Revoker interface {
	Revoke(ctx context.Context, t Token) error
}
