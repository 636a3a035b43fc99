package rocketchat

import (
	"context"
	"net/http"
)

// SetActiveStatus activates or deactivates a user. Deactivation makes
// Rocket.Chat wipe every login token of the user, PATs included (protocol
// spec §2.2, §4.10).
//
// POST /api/v1/users.setActiveStatus {"userId","activeStatus"} (spec §4.10;
// user-management.yaml). 200: {"user":{"_id","active"},"success":true}.
// Needs edit-other-user-active-status (403 otherwise). Errors:
// error-invalid-user, [user-last-owner]. Never retried.
func (c *Client) SetActiveStatus(ctx context.Context, cr Credentials, userID string, active bool) error {
	const ep = "users.setActiveStatus"
	if userID == "" {
		return invalidArg(ep, "userID is required")
	}
	body := struct {
		UserID       string `json:"userId"`
		ActiveStatus bool   `json:"activeStatus"`
	}{userID, active}
	return c.do(ctx, call{method: http.MethodPost, endpoint: ep, path: "/api/v1/users.setActiveStatus", body: body, cr: &cr}, nil)
}

// DeleteUser deletes a user.
//
// POST /api/v1/users.delete {"userId","confirmRelinquish":true} (spec §4.9;
// user-management.yaml). 200: {"success":true}. Needs delete-user (403
// otherwise). Errors: error-invalid-user (→ IsNotFound), [user-last-owner].
// Never retried.
func (c *Client) DeleteUser(ctx context.Context, cr Credentials, userID string) error {
	const ep = "users.delete"
	if userID == "" {
		return invalidArg(ep, "userID is required")
	}
	body := struct {
		UserID            string `json:"userId"`
		ConfirmRelinquish bool   `json:"confirmRelinquish"`
	}{userID, true}
	return c.do(ctx, call{method: http.MethodPost, endpoint: ep, path: "/api/v1/users.delete", body: body, cr: &cr}, nil)
}
