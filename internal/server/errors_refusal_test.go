package server

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rocketchat"
)

// Rocket.Chat's refusals are upstream failures (5xx) with a message that
// names what the site administrator must change: the permission the
// service account lacks (6.x–8.x 400 codes, 403s, 9.0's 403
// error-forbidden of PR #43214), or the minting mode's incapacity.
func TestClassifyRefusals(t *testing.T) {
	forbidden90 := &rocketchat.Error{Endpoint: "users.setAvatar", Status: 403, ErrorType: "error-forbidden", Code: "error-not-allowed",
		Message: "Change avatar is not allowed"}
	cases := []struct {
		name   string
		err    error
		status int
		msg    string // substring
	}{
		{"bot role: Adding user is not allowed", fmt.Errorf("provision: %w", &rocketchat.Error{Endpoint: "users.create", Status: 400,
			ErrorType: "error-action-not-allowed", Message: "Adding user is not allowed"}), 502, "lacks the permission create-user"},
		{"9.0 403 error-forbidden", forbidden90, 502, "lacks the permission edit-other-user-avatar"},
		{"route-level 403", &rocketchat.Error{Endpoint: "users.delete", Status: 403, ErrorType: "error-unauthorized",
			Message: "User does not have the permissions required for this action"}, 502, "lacks the permission delete-user"},
		{"createToken refused", &rocketchat.Error{Endpoint: "users.createToken", Status: 400, ErrorType: "error-not-authorized",
			Message: "Not authorized"}, 502, "user-generate-access-token"},
		{"403 on an endpoint rcsso does not know", &rocketchat.Error{Endpoint: "rooms.info", Status: 403, Message: "forbidden"}, 502,
			"for lack of a permission"},
		{"mode incapable (wraps a 500)", fmt.Errorf("oauth: %w: Custom OAuth is switched off: %w", mint.ErrIncapable,
			&rocketchat.Error{Endpoint: "login", Status: 500, Message: "Internal server error"}), 502, "as Rocket.Chat is set up now"},
		{"500 is still unavailable", &rocketchat.Error{Endpoint: "users.create", Status: 500, Message: "Internal server error"}, 503, "cannot be reached"},
		{"other refusal", &rocketchat.Error{Endpoint: "users.create", Status: 400, ErrorType: "error-invalid-email", Message: "Invalid email"}, 502,
			"Rocket.Chat refused the request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, msg, _ := classify(c.err)
			if status != c.status || !strings.Contains(msg, c.msg) {
				t.Fatalf("classify = %d %q, want %d and %q", status, msg, c.status, c.msg)
			}
			if status == http.StatusUnauthorized {
				t.Fatal("a Rocket.Chat refusal must never look like 'not logged in on the website'")
			}
		})
	}
}
