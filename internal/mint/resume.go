package mint

import (
	"context"

	"github.com/rcsso/rcsso/internal/rocketchat"
)

// ResumeSession implements Validator and Revoker for resume tokens
// (loginToken) through Rocket.Chat's REST API as the token's own user; the
// REST minters embed it.
type ResumeSession struct {
	RC *rocketchat.Client
}

// Validate asks GET /api/v1/me as the user (protocol spec §4.2); a 401 is
// ErrRejected. Note: Rocket.Chat rate-limits /me per client IP for
// ordinary users (§4.14), which is why the Broker validates lazily.
func (s ResumeSession) Validate(ctx context.Context, t Token) error {
	_, err := s.RC.Me(ctx, rocketchat.Credentials{UserID: t.UserID, AuthToken: t.Value})
	if rocketchat.IsUnauthorized(err) {
		return ErrRejected
	}
	return err
}

// Revoke ends the session with POST /api/v1/logout as the user (§4.3); a
// token Rocket.Chat no longer knows is not an error.
func (s ResumeSession) Revoke(ctx context.Context, t Token) error {
	err := s.RC.Logout(ctx, rocketchat.Credentials{UserID: t.UserID, AuthToken: t.Value})
	if rocketchat.IsUnauthorized(err) {
		return nil
	}
	return err
}
