// Package rcadmin supplies the credentials of rcsso's Rocket.Chat service
// account: a personal access token (preferred; protocol spec §4.12) or a
// username and password logged in once and reused (POST /api/v1/login is rate
// limited to 10/min per IP with no bypass, spec §4.14, so never per request).
package rcadmin

import (
	"context"
	"fmt"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/rcsso/rcsso/internal/rocketchat"
)

// Auth yields admin credentials.
type Auth interface {
	// Credentials returns credentials to use now.
	Credentials(ctx context.Context) (rocketchat.Credentials, error)
	// Invalidate drops cr if it is still the current credential (after a
	// 401), so the next Credentials call logs in again. No-op for a PAT.
	Invalidate(cr rocketchat.Credentials)
}

// PAT is a fixed personal access token.
type PAT rocketchat.Credentials

// Credentials implements Auth.
func (p PAT) Credentials(context.Context) (rocketchat.Credentials, error) {
	return rocketchat.Credentials(p), nil
}

// Invalidate implements Auth (a PAT cannot be renewed by rcsso).
func (PAT) Invalidate(rocketchat.Credentials) {}

// Password logs in with a username and password once and reuses the resume
// token until Rocket.Chat rejects it.
type Password struct {
	RC       *rocketchat.Client
	Username string
	Password string

	mu  sync.Mutex
	cur rocketchat.Credentials
	sf  singleflight.Group
}

// Credentials implements Auth.
func (p *Password) Credentials(ctx context.Context) (rocketchat.Credentials, error) {
	p.mu.Lock()
	cur := p.cur
	p.mu.Unlock()
	if cur.AuthToken != "" {
		return cur, nil
	}
	v, err, _ := p.sf.Do("login", func() (any, error) {
		res, err := p.RC.LoginPassword(context.WithoutCancel(ctx), p.Username, p.Password)
		if err != nil {
			return rocketchat.Credentials{}, fmt.Errorf("logging in to Rocket.Chat as service account %q: %w", p.Username, err)
		}
		cr := rocketchat.Credentials{UserID: res.UserID, AuthToken: res.AuthToken}
		p.mu.Lock()
		p.cur = cr
		p.mu.Unlock()
		return cr, nil
	})
	return v.(rocketchat.Credentials), err
}

// Invalidate implements Auth.
func (p *Password) Invalidate(cr rocketchat.Credentials) {
	p.mu.Lock()
	if p.cur == cr {
		p.cur = rocketchat.Credentials{}
	}
	p.mu.Unlock()
}

// Do calls f with admin credentials; if Rocket.Chat answers 401 it
// invalidates them and calls f once more with fresh ones.
func Do[T any](ctx context.Context, a Auth, f func(rocketchat.Credentials) (T, error)) (T, error) {
	var zero T
	cr, err := a.Credentials(ctx)
	if err != nil {
		return zero, err
	}
	v, err := f(cr)
	if err == nil || !rocketchat.IsUnauthorized(err) {
		return v, err
	}
	if _, isPAT := a.(PAT); isPAT {
		return zero, fmt.Errorf("Rocket.Chat rejected the admin personal access token (rocketchat.admin_user_id/admin_token): %w", err)
	}
	a.Invalidate(cr)
	if cr, err = a.Credentials(ctx); err != nil {
		return zero, err
	}
	return f(cr)
}
