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
)

// TestClassify is the table test of classify: one row per error value.
func TestClassify(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		retry  int
	}{
		{&Error{Status: http.StatusBadRequest, Message: "x"}, http.StatusBadRequest, 0},
		{errOrigin, http.StatusForbidden, 0},
		{identity.ErrNotLoggedIn, http.StatusUnauthorized, 0},
		{mint.ErrChatLoggedOut, http.StatusUnauthorized, 0},
		{fmt.Errorf("whoami: %w", identity.ErrSourceUnavailable), http.StatusBadGateway, 0},
		{provision.ErrConflict, http.StatusConflict, 0},
		{&mint.ThrottledError{RetryAfter: 1500 * time.Millisecond}, http.StatusServiceUnavailable, 2},
		{&rocketchat.Error{Endpoint: "info", Status: http.StatusTooManyRequests, RetryAfter: 4 * time.Second}, http.StatusServiceUnavailable, 5},
		{&rocketchat.Error{Endpoint: "info", Status: http.StatusBadGateway}, http.StatusServiceUnavailable, 0},
		{&rocketchat.Error{Endpoint: "users.create", Status: http.StatusBadRequest}, http.StatusBadGateway, 0},
		{context.DeadlineExceeded, http.StatusGatewayTimeout, 0},
		{&LoginRefusedError{Reason: RefusedClient, RetryAfter: 14*time.Minute + 30*time.Second}, http.StatusTooManyRequests, 870},
		{&LoginRefusedError{Reason: RefusedUserClient, RetryAfter: 300 * time.Millisecond}, http.StatusTooManyRequests, 1},
		{&LoginRefusedError{Reason: RefusedSlowDown, RetryAfter: 8 * time.Second}, http.StatusTooManyRequests, 8},
		{&LoginRefusedError{Reason: RefusedBusy, RetryAfter: loginHashWait}, http.StatusTooManyRequests, 2},
		{errors.New("boom"), http.StatusInternalServerError, 0},
	} {
		status, msg, retry := classify(c.err)
		if status != c.status || retry != c.retry || msg == "" {
			t.Errorf("classify(%v) = %d %q retry %d, want %d retry %d", c.err, status, msg, retry, c.status, c.retry)
		}
	}
}
