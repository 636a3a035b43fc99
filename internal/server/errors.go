package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store"
)

// Error is an error with the HTTP status and the message shown to the
// client. Handlers return it (or any error); writeError is the one place
// that maps errors to responses:
//
//	identity.ErrNotLoggedIn        → 401 (only this: "not logged in on the website")
//	identity.ErrSourceUnavailable  → 502 (whoami endpoint, JWKS down)
//	mint.ErrChatLoggedOut          → 401 (logged out on the chat side, spec §1.7)
//	*mint.ThrottledError           → 503 + Retry-After
//	errOrigin                      → 403
//	store.ErrConflict              → 409 (provision.ErrConflict and every
//	                                 mode's conflict wrap it; a Rocket.Chat
//	                                 user linked to another subject too)
//	Rocket.Chat rate limit (429)   → 503 + Retry-After
//	mint.ErrIncapable              → 502 (the mode cannot work with Rocket.Chat as
//	                                 it is set up now, e.g. 9.0's Custom OAuth gate)
//	Rocket.Chat unreachable / 5xx  → 503
//	Rocket.Chat permission refusal → 502 naming the missing permission
//	                                 (rocketchat.IsForbidden: 403, 9.0 error-forbidden,
//	                                 error-action-not-allowed, …)
//	other Rocket.Chat refusals     → 502
//	deadline exceeded              → 504
//	anything else                  → 500
type Error struct {
	Status  int
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %v", e.Status, e.Message, e.Err)
	}
	return fmt.Sprintf("%d %s", e.Status, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

var errOrigin = &Error{Status: http.StatusForbidden, Message: "origin not allowed"}

// classify maps err to a status, a public message and a Retry-After (s).
func classify(err error) (int, string, int) {
	var he *Error
	if errors.As(err, &he) {
		return he.Status, he.Message, 0
	}
	var te *mint.ThrottledError
	if errors.As(err, &te) {
		return http.StatusServiceUnavailable, "a chat token was issued for you moments ago; try again shortly", int(te.RetryAfter.Seconds()) + 1
	}
	if d, ok := rocketchat.IsRateLimited(err); ok {
		return http.StatusServiceUnavailable, "Rocket.Chat is rate limiting rcsso; try again shortly", int(d.Seconds()) + 1
	}
	switch {
	case errors.Is(err, identity.ErrNotLoggedIn):
		return http.StatusUnauthorized, "not logged in on the website", 0
	case errors.Is(err, mint.ErrChatLoggedOut):
		// Rocket.Chat shows the IFrame URL, which offers to log in again.
		return http.StatusUnauthorized, "you logged out of the chat", 0
	case errors.Is(err, identity.ErrSourceUnavailable):
		return http.StatusBadGateway, "the website cannot tell who you are right now; try again shortly", 0
	case errors.Is(err, provision.ErrReservedEmail):
		return http.StatusConflict, "your e-mail address is in a domain reserved for chat accounts without one; ask the site administrator", 0
	case errors.Is(err, store.ErrConflict):
		return http.StatusConflict, "your chat account conflicts with another Rocket.Chat user; ask the site administrator", 0
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "Rocket.Chat did not answer in time", 0
	case errors.Is(err, mint.ErrIncapable):
		return http.StatusBadGateway, "rcsso cannot log you in to the chat as Rocket.Chat is set up now; the site administrator can find what to change in rcsso's log and /readyz", 0
	case rocketchat.IsUnavailable(err):
		return http.StatusServiceUnavailable, "Rocket.Chat cannot be reached", 0
	case rocketchat.IsForbidden(err):
		if p := rocketchat.MissingPermission(err); p != "" {
			return http.StatusBadGateway, "Rocket.Chat refused rcsso's request: its service account lacks the permission " + p +
				"; the site administrator can grant it under Administration → Workspace → Permissions", 0
		}
		return http.StatusBadGateway, "Rocket.Chat refused rcsso's request for lack of a permission; the site administrator can find which in rcsso's log", 0
	}
	var rce *rocketchat.Error
	if errors.As(err, &rce) {
		return http.StatusBadGateway, "Rocket.Chat refused the request; the site administrator can find details in rcsso's log", 0
	}
	return http.StatusInternalServerError, "internal error", 0
}

// writeError logs err and writes the JSON or HTML error response.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error, html bool) {
	status, msg, retry := classify(err)
	reqID := requestID(r.Context())
	lvl := slog.LevelWarn
	switch {
	case status == http.StatusUnauthorized, status == http.StatusNotFound:
		lvl = slog.LevelDebug
	case status >= 500:
		lvl = slog.LevelError
	}
	s.log.Log(r.Context(), lvl, "request failed", "request_id", reqID, "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	if retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(retry))
	}
	w.Header().Set("Cache-Control", "no-store")
	if html {
		s.render(w, r, status, "error.html", page{Title: "Chat sign-in", Heading: "Chat sign-in failed", Error: msg, RequestID: reqID})
		return
	}
	writeJSON(w, status, map[string]string{"error": msg, "request_id": reqID})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
