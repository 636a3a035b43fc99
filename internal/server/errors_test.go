package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	mongomint "github.com/rcsso/rcsso/internal/mint/mongo"
	passwordmint "github.com/rcsso/rcsso/internal/mint/password"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store"
)

// mongoOutage returns the error a MongoDB minting mode gives when its
// MongoDB cannot be reached: a real driver error, from a server selection
// against a closed port, or from a disconnected client.
func mongoOutage(t *testing.T, disconnected bool) error {
	t.Helper()
	u, err := mongomint.Connect("mongodb://127.0.0.1:1/rocketchat?serverSelectionTimeoutMS=50&connectTimeoutMS=50")
	if err != nil {
		t.Fatal(err)
	}
	if disconnected {
		_ = u.Close(context.Background())
	} else {
		defer u.Close(context.Background())
	}
	m := &mongomint.ResumeMinter{Users: u}
	_, err = m.Mint(t.Context(), mint.Request{Identity: identity.Identity{Subject: "local:alice"}, Link: store.Link{Subject: "local:alice", UserID: "U1"}})
	if err == nil {
		t.Fatal("minting against a closed port worked")
	}
	return err
}

// TestClassify is the error table's table: every error value a handler can
// return, from every identity source and minting mode, with the status the
// client gets. A new error value gets a row here and in classify.
func TestClassify(t *testing.T) {
	rc := func(status int, errType string, err error) error {
		return fmt.Errorf("minting: %w", &rocketchat.Error{Endpoint: "users.createToken", Status: status, ErrorType: errType, Message: "x", Err: err})
	}
	cases := []struct {
		name   string
		err    error
		status int
		retry  int
	}{
		{"refused origin", errOrigin, 403, 0},
		{"Fetch Metadata: no-cors", errNoCORS, 403, 0},
		{"Fetch Metadata: cross-site navigation", errCrossSiteNavigation, 403, 0},
		{"unknown path", errNotFound, 404, 0},
		{"handler's own *Error", &Error{Status: http.StatusBadRequest, Message: "malformed login form"}, 400, 0},

		{"not logged in", identity.ErrNotLoggedIn, 401, 0},
		{"not logged in, wrapped", fmt.Errorf("%w: header X-Forwarded-User ignored from untrusted peer", identity.ErrNotLoggedIn), 401, 0},
		{"logged out of the chat", mint.ErrChatLoggedOut, 401, 0},
		{"API URL from the mobile app's WebView", errMobileAppWebView, 401, 0},
		{"identity header sent twice", fmt.Errorf("%w: identity header X-Forwarded-User appears 2 times", identity.ErrMalformedRequest), 400, 0},
		{"identity source unavailable", fmt.Errorf("whoami endpoint answered 500: %w", identity.ErrSourceUnavailable), 502, 0},

		{"REST provisioning conflict", fmt.Errorf("%w: usernames \"alice\" and its suffixed form belong to other Rocket.Chat users", provision.ErrConflict), 409, 0},
		{"MongoDB provisioning conflict", fmt.Errorf("%w: usernames \"alice\" and its suffixed form belong to other Rocket.Chat users", mongomint.ErrConflict), 409, 0},
		{"Rocket.Chat user linked to another subject", fmt.Errorf("update link: %w", &store.LinkTakenError{UserID: "U1", Holder: "header:carol"}), 409, 0},
		{"placeholder-domain e-mail", provision.ErrReservedEmail, 409, 0},
		{"deactivated Rocket.Chat user", mint.ErrDeactivated, 403, 0},
		{"access policy refuses the person", identity.ErrAccessDenied, 403, 0},

		{"throttled", &mint.ThrottledError{RetryAfter: 20 * time.Second}, 503, 21},
		{"login form: too many failures from this client", &LoginRefusedError{Reason: RefusedClient, RetryAfter: 14*time.Minute + 30*time.Second}, 429, 870},
		{"login form: too many failures for this user from this client", &LoginRefusedError{Reason: RefusedUserClient, RetryAfter: 300 * time.Millisecond}, 429, 1},
		{"login form: per-user slow-down", &LoginRefusedError{Reason: RefusedSlowDown, RetryAfter: 8 * time.Second}, 429, 8},
		{"login form: all password checks busy", &LoginRefusedError{Reason: RefusedBusy, RetryAfter: loginHashWait}, 429, 2},
		{"native login: wrong password", &NativeLoginError{Reason: NativeBadCredentials, Err: &rocketchat.Error{Endpoint: "login", Status: 200, Message: "User not found"}}, 403, 0},
		{"native login: wrong 2FA code", &NativeLoginError{Reason: NativeCodeInvalid, Err: &rocketchat.Error{Endpoint: "login", Status: 200, ErrorType: "totp-invalid"}}, 403, 0},
		{"native login: deactivated", &NativeLoginError{Reason: NativeDeactivated}, 403, 0},
		{"native login: refused without a reason (8.x REST)", &NativeLoginError{Reason: NativeUndisclosed, Err: &rocketchat.Error{Endpoint: "login", Status: 401, ErrorType: "unauthorized"}}, 403, 0},
		{"native login: Rocket.Chat's failed-login block", &NativeLoginError{Reason: NativeBlocked, RetryAfter: 5 * time.Minute}, 429, 300},
		{"native login: Rocket.Chat's rate limit", &NativeLoginError{Reason: NativeRateLimited, RetryAfter: 6500 * time.Millisecond, Err: &rocketchat.Error{Endpoint: "login", Status: 200, ErrorType: "too-many-requests"}}, 429, 7},
		{"native login: malformed field", &NativeLoginError{Reason: NativeMalformed}, 400, 0},
		{"native login: top-level tab", &NativeLoginError{Reason: NativeTopLevel}, 400, 0},
		{"native login: scripted post (Fetch Metadata)", errNativeNotNavigation, 403, 0},
		{"Rocket.Chat 429", &rocketchat.Error{Endpoint: "users.createToken", Status: 429, RetryAfter: 5 * time.Second}, 503, 6},
		{"Rocket.Chat error-too-many-requests", rc(400, "error-too-many-requests", nil), 503, 1},
		{"rcsso's Rocket.Chat budget spent", fmt.Errorf("oauth: %w", &rocketchat.Error{Endpoint: "login", RetryAfter: 30 * time.Second, Err: rocketchat.ErrBudgetSpent}), 503, 31},
		{"Rocket.Chat 503", rc(503, "", nil), 503, 0},
		{"Rocket.Chat 502 from its proxy", rc(502, "", nil), 503, 0},
		{"Rocket.Chat unreachable", rc(0, "", syscall.ECONNREFUSED), 503, 0},
		{"MongoDB outage (shared value)", fmt.Errorf("mongo-resume: %w", mint.ErrUnavailable), 503, 0},
		{"MongoDB outage (server selection)", mongoOutage(t, false), 503, 0},
		{"MongoDB outage (client disconnected)", mongoOutage(t, true), 503, 0},

		{"Rocket.Chat 403 permission", rc(403, "error-not-authorized", nil), 502, 0},
		{"Rocket.Chat 400 refusal", rc(400, "error-invalid-user", nil), 502, 0},
		{"Rocket.Chat 401 (bad admin token)", rc(401, "", nil), 502, 0},
		{"mode mongo-iframe: e-mail 2FA", fmt.Errorf("mongo-iframe: user U1: %w", mongomint.ErrEmail2FA), 502, 0},
		{"mode password: no password", passwordmint.ErrNoPassword, 502, 0},
		{"cannot mint (shared value)", mint.ErrCannotMint, 502, 0},
		{"mode incapable (9.0 Custom OAuth gate)", fmt.Errorf("oauth: %w", mint.ErrIncapable), 502, 0},

		{"client hung up", context.Canceled, statusClientClosed, 0},
		{"client hung up during a Rocket.Chat call", rc(0, "", context.Canceled), statusClientClosed, 0},
		{"deadline", context.DeadlineExceeded, 504, 0},
		{"Rocket.Chat timeout", rc(0, "", context.DeadlineExceeded), 504, 0},

		{"store: not found", fmt.Errorf("sqlite: get link: %w", store.ErrNotFound), 500, 0},
		{"store: conflict is not a Rocket.Chat conflict", fmt.Errorf("sqlite: create account: %w", store.ErrConflict), 500, 0},
		{"store: no rcsso store (read-only open, rcsso store migrate only)", fmt.Errorf("sqlite: open read-only: %w", store.ErrNoStore), 500, 0},
		{"store down", fmt.Errorf("sqlite: put token: %w", errors.New("database is locked (5) (SQLITE_BUSY)")), 500, 0},
		{"cached token rejected (the broker's own)", mint.ErrRejected, 500, 0},
		{"anything else", errors.New("boom"), 500, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, msg, retry := classify(c.err)
			if status != c.status || retry != c.retry {
				t.Fatalf("classify(%v) = %d (Retry-After %d), want %d (%d)", c.err, status, retry, c.status, c.retry)
			}
			if msg == "" {
				t.Fatal("no public message")
			}
			if status >= 500 && strings.Contains(msg, c.err.Error()) {
				t.Fatalf("the public message repeats the internal error: %q", msg)
			}
		})
	}
}

// A client that hung up is not rcsso's failure: no ERROR line, status 499
// for metrics and the access log, nothing written.
func TestClientHungUpIsNotAnError(t *testing.T) {
	s, _, _ := newTestServer(t)
	var logs bytes.Buffer
	s.log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var observed int
	s.o.Observe = func(_ string, code int) { observed = code }
	s.o.Identity = identity.Chain{hungUpSource{}}
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequestWithContext(ctx, "POST", "/api/rocketchat/token", nil)
	r.Header.Set("Origin", rcOrigin)
	cancel()
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	if w.Code != statusClientClosed || w.Body.Len() != 0 || observed != statusClientClosed {
		t.Fatalf("status %d (observed %d), body %q", w.Code, observed, w.Body)
	}
	if strings.Contains(logs.String(), "level=ERROR") || strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "request canceled by the client") {
		t.Fatalf("log:\n%s", logs.String())
	}
}

// hungUpSource waits on the request context like a source calling the
// website's whoami endpoint, and fails with its error.
type hungUpSource struct{}

func (hungUpSource) Name() string { return "whoami" }
func (hungUpSource) Identify(r *http.Request) (identity.Identity, error) {
	<-r.Context().Done()
	return identity.Identity{}, fmt.Errorf("calling the whoami endpoint: %w", r.Context().Err())
}
