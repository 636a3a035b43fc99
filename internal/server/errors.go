package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store"
)

// Error is an error with the HTTP status and the message shown to the
// client. Handlers return it (or any error); classify is the one table that
// maps errors to responses (TestClassify lists every row):
//
//	*Error                         → its Status (errOrigin 403, Fetch Metadata 403, 404, …)
//	identity.ErrNotLoggedIn        → 401 (only this: "not logged in on the website")
//	mint.ErrChatLoggedOut          → 401 (logged out on the chat side, spec §1.7)
//	identity.ErrMalformedRequest   → 400 (an identity header sent twice)
//	identity.ErrSourceUnavailable  → 502 (whoami endpoint, JWKS down)
//	mint.ErrDeactivated            → 403 (the Rocket.Chat user is deactivated)
//	identity.ErrAccessDenied       → 403 (the source's allow list refuses the person)
//	errMobileAppWebView            → 401 (the API URL called from the mobile
//	                                 app's WebView, which takes the token
//	                                 only from the IFrame URL)
//	*mint.ThrottledError           → 503 + Retry-After
//	*LoginRefusedError             → 429 + Retry-After (login form limits)
//	*NativeLoginError              → per Reason (native login form,
//	                                 nativelogin.go): 403 wrong password,
//	                                 wrong code, deactivated, refused
//	                                 without a reason; 429 + Retry-After
//	                                 Rocket.Chat's rate limit or block;
//	                                 400 malformed field, not in the chat
//	errOrigin                      → 403
//	provision.ErrConflict          → 409 (every mode's conflict wraps it)
//	store.ErrLinkTaken             → 409 (a Rocket.Chat user linked to
//	                                 another subject)
//	rocketchat.ErrBudgetSpent      → 503 + Retry-After (rcsso held the call
//	                                 back: rocketchat.calls_per_minute is spent)
//	Rocket.Chat rate limit (429)   → 503 + Retry-After
//	mint.ErrUnavailable            → 503 (the mode's backend, e.g. MongoDB, is down)
//	mint.ErrIncapable              → 502 (the mode cannot work with Rocket.Chat as
//	                                 it is set up now, e.g. 9.0's Custom OAuth gate)
//	Rocket.Chat unreachable / 5xx  → 503
//	Rocket.Chat permission refusal → 502 naming the missing permission
//	                                 (rocketchat.IsForbidden: 403, 9.0 error-forbidden,
//	                                 error-action-not-allowed, …)
//	mint.ErrCannotMint             → 502 (the mode cannot log this person in)
//	context.Canceled               → 499, nothing written (the client hung up)
//	deadline exceeded              → 504
//	other Rocket.Chat refusals     → 502 (403 permission errors included)
//	anything else                  → 500 (store errors included)
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

// statusClientClosed is the status recorded (metrics, access log)
// when the client hung up before the answer was ready: nginx's 499. Nothing
// meaningful is written; the client is gone.
const statusClientClosed = 499

// classify maps err to a status, a public message and a Retry-After (s).
func classify(err error) (int, string, int) {
	var he *Error
	if errors.As(err, &he) {
		return he.Status, he.Message, 0
	}
	var le *LoginRefusedError
	if errors.As(err, &le) {
		retry := int((le.RetryAfter + time.Second - 1) / time.Second)
		switch le.Reason {
		case RefusedBusy:
			return http.StatusTooManyRequests, "Too many logins at this moment. Try again in a few seconds.", max(retry, 1)
		case RefusedSlowDown:
			return http.StatusTooManyRequests, fmt.Sprintf("This account had many failed logins. Try again in %d seconds.", max(retry, 1)), max(retry, 1)
		}
		return http.StatusTooManyRequests, fmt.Sprintf("Too many failed attempts. Try again in %d minutes.", retry/60+1), max(retry, 1)
	}
	var ne *NativeLoginError
	if errors.As(err, &ne) {
		return nativeMessage(ne)
	}
	var te *mint.ThrottledError
	if errors.As(err, &te) {
		return http.StatusServiceUnavailable, "a chat token was issued for you moments ago; try again shortly", int(te.RetryAfter.Seconds()) + 1
	}
	if d, ok := rocketchat.IsRateLimited(err); ok {
		if errors.Is(err, rocketchat.ErrBudgetSpent) {
			return http.StatusServiceUnavailable, "rcsso is pacing its calls to stay under Rocket.Chat's rate limit; try again shortly", int(d.Seconds()) + 1
		}
		return http.StatusServiceUnavailable, "Rocket.Chat is rate limiting rcsso; try again shortly", int(d.Seconds()) + 1
	}
	switch {
	case errors.Is(err, identity.ErrNotLoggedIn):
		return http.StatusUnauthorized, "not logged in on the website", 0
	case errors.Is(err, identity.ErrAccessDenied):
		return http.StatusForbidden, "you do not have access to the chat; ask the site administrator", 0
	case errors.Is(err, mint.ErrDeactivated):
		return http.StatusForbidden, "your chat account is deactivated; ask the site administrator", 0
	case errors.Is(err, mint.ErrChatLoggedOut):
		// Rocket.Chat shows the IFrame URL, which offers to log in again.
		return http.StatusUnauthorized, "you logged out of the chat", 0
	case errors.Is(err, identity.ErrMalformedRequest):
		return http.StatusBadRequest, "the request carries conflicting identity headers; the site administrator must make the proxy in front of rcsso replace them", 0
	case errors.Is(err, identity.ErrSourceUnavailable):
		return http.StatusBadGateway, "the website cannot tell who you are right now; try again shortly", 0
	case errors.Is(err, provision.ErrReservedEmail):
		return http.StatusConflict, "your e-mail address is in a domain reserved for chat accounts without one; ask the site administrator", 0
	case errors.Is(err, provision.ErrConflict), errors.Is(err, store.ErrLinkTaken):
		return http.StatusConflict, "your chat account conflicts with another Rocket.Chat user; ask the site administrator", 0
	case errors.Is(err, mint.ErrUnavailable):
		return http.StatusServiceUnavailable, "the chat's database cannot be reached; try again shortly", 0
	case errors.Is(err, mint.ErrCannotMint):
		return http.StatusBadGateway, "rcsso cannot log you in to the chat as it is set up; the site administrator can find details in rcsso's log", 0
	case errors.Is(err, context.Canceled):
		return statusClientClosed, "request canceled", 0
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
	if status == statusClientClosed {
		// Not an error of rcsso's: the visitor closed the tab or Rocket.Chat
		// aborted its call. Record the status; the body would go nowhere.
		s.log.Debug("request canceled by the client", "request_id", reqID, "method", r.Method, "path", r.URL.Path, "err", err)
		w.WriteHeader(statusClientClosed)
		return
	}
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
