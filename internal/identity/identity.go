// Package identity defines how rcsso learns who the visitor is on the
// website: an identity Source recognises the visitor from the HTTP request
// (a trusted proxy header, rcsso's own session cookie, …). Sources are small;
// extra abilities are optional interfaces (PasswordAuthenticator), as in dex's
// connector package.
package identity

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// ErrNotLoggedIn means the source does not recognise the visitor: they are
// not logged in on the website (as far as this source can tell). It is the
// only error that makes the API URL answer 401.
var ErrNotLoggedIn = errors.New("identity: visitor is not logged in on the website")

// ErrSourceUnavailable means a source cannot tell who the visitor is right
// now because something it depends on failed (the website's whoami
// endpoint, a JWKS URL, an OIDC provider). The API URL answers 502, not 401:
// Rocket.Chat must not conclude the visitor is logged out.
var ErrSourceUnavailable = errors.New("identity: identity source unavailable")

// ErrMalformedRequest means the request carries identity data that cannot
// be read one way, such as a trusted proxy's identity header that appears
// more than once (X-Forwarded-User twice: which one is the visitor?). The
// API URL answers 400, not 401: the proxy in front of rcsso is misconfigured
// (it passes on a header the client sent instead of replacing it), and
// neither value is believed. Chain stops at it; no later source is tried.
var ErrMalformedRequest = errors.New("identity: the request carries malformed identity data")

// ErrBadCredentials is returned by PasswordAuthenticator when the username
// or password is wrong. It never says which.
var ErrBadCredentials = errors.New("identity: wrong username or password")

// Identity is the website's view of a visitor.
type Identity struct {
	// Subject is stable and unique across sources: "<source>:<id>", e.g.
	// "local:alice" or "header:u-123". It never changes for a person, unlike
	// the e-mail address.
	Subject string
	// Source is the identity source name that recognised the visitor.
	Source string
	// Username is the website's user name (before Rocket.Chat mapping).
	Username string
	// Name is the display name; may be empty.
	Name string
	// Email may be empty; EmailVerified says whether the website vouches for it.
	Email         string
	EmailVerified bool
	// AvatarURL is an absolute http(s) URL of the person's picture; may be empty.
	AvatarURL string
	// Roles are Rocket.Chat role names, already filtered through the
	// configured allow-list; nil means "do not manage roles".
	Roles []string
	// Groups are the person's groups on the website or in the directory
	// (a groups header, a groups claim, LDAP groups), as the source names
	// them; nil when the source does not say. They decide access (a
	// source's allow list) and rooms (provisioning.rooms), and, through
	// role_map, roles.
	Groups []string
	// AuthTime is when the person logged in on the website, if the source
	// knows (session start); zero otherwise.
	AuthTime time.Time
}

// Source recognises the visitor from a request.
type Source interface {
	// Name is the configured source name (used in subjects and logs).
	Name() string
	// Identify returns the visitor's identity, ErrNotLoggedIn when this
	// source does not recognise them, or another error when it cannot tell
	// (for example its backing store is down).
	Identify(r *http.Request) (Identity, error)
}

// Checker is implemented by sources with a backend that can be down while
// rcsso runs (a directory). /readyz shows the result as a warning, not as
// unreadiness: people already logged in keep their chat.
type Checker interface {
	Source
	// Check reports whether the backend answers: nil, or an error that
	// says what failed (never a secret), within ctx's deadline.
	Check(ctx context.Context) error
}

// PasswordAuthenticator is implemented by sources that take a username and
// password on rcsso's own login form (IFrame URL).
type PasswordAuthenticator interface {
	Source
	// Authenticate checks the credentials; ErrBadCredentials when wrong.
	Authenticate(ctx context.Context, username, password string) (Identity, error)
}

// Interactive is implemented by sources that log the visitor in through
// rcsso's own pages (OIDC redirect, …). The IFrame URL offers a button for
// each; the server mounts the source's handler under /auth/<Name()>/.
type Interactive interface {
	Source
	// LoginLabel is the button text, e.g. "Log in with Example ID".
	LoginLabel() string
	// Handler serves the source's routes below /auth/<Name()>/ (the prefix
	// is stripped). The login route is "login": a top-level GET that ends,
	// after the provider's round trip, by starting an rcsso session and
	// redirecting to the safe return_to it was given (the popup page when
	// started from the IFrame URL).
	Handler() http.Handler
}

// Chain tries sources in order; the first that recognises the visitor wins.
type Chain []Source

// Identify returns the first identity found, ErrNotLoggedIn when no source
// recognises the visitor, or the first other error (a broken source does not
// silently fall through to the next one).
func (c Chain) Identify(r *http.Request) (Identity, error) {
	for _, s := range c {
		id, err := s.Identify(r)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, ErrNotLoggedIn) {
			return Identity{}, err
		}
	}
	return Identity{}, ErrNotLoggedIn
}

// PasswordSources returns the sources that take a password on the login
// form (local, ldap), in the chain's order; nil when none does.
func (c Chain) PasswordSources() []PasswordAuthenticator {
	var out []PasswordAuthenticator
	for _, s := range c {
		if p, ok := s.(PasswordAuthenticator); ok {
			out = append(out, p)
		}
	}
	return out
}
