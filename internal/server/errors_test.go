package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store"
)

// TestClassify is classify's table, row by row (errors.go).
func TestClassify(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		retry  bool
	}{
		{"not logged in", fmt.Errorf("local: %w", identity.ErrNotLoggedIn), http.StatusUnauthorized, false},
		{"source unavailable", identity.ErrSourceUnavailable, http.StatusBadGateway, false},
		{"chat logged out", mint.ErrChatLoggedOut, http.StatusUnauthorized, false},
		{"mobile app WebView", errMobileAppWebView, http.StatusUnauthorized, false},
		{"throttled", &mint.ThrottledError{RetryAfter: 10 * time.Second}, http.StatusServiceUnavailable, true},
		{"origin", errOrigin, http.StatusForbidden, false},
		{"conflict", fmt.Errorf("provision: %w", store.ErrConflict), http.StatusConflict, false},
		{"reserved e-mail", provision.ErrReservedEmail, http.StatusConflict, false},
		{"Rocket.Chat rate limit", &rocketchat.Error{Endpoint: "users.create", Status: http.StatusTooManyRequests, RetryAfter: 5 * time.Second}, http.StatusServiceUnavailable, true},
		{"Rocket.Chat 5xx", &rocketchat.Error{Endpoint: "users.create", Status: http.StatusBadGateway}, http.StatusServiceUnavailable, false},
		{"Rocket.Chat refusal", &rocketchat.Error{Endpoint: "users.create", Status: http.StatusBadRequest}, http.StatusBadGateway, false},
		{"deadline", context.DeadlineExceeded, http.StatusGatewayTimeout, false},
		{"anything else", errors.New("boom"), http.StatusInternalServerError, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, msg, retry := classify(c.err)
			if status != c.status || msg == "" || (retry > 0) != c.retry {
				t.Fatalf("classify(%v) = %d %q retry %d; want %d, retry %v", c.err, status, msg, retry, c.status, c.retry)
			}
		})
	}
}
