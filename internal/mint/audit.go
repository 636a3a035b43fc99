package mint

import (
	"context"
	"errors"
	"fmt"

	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store"
)

// record writes an audit event about id (docs/audit.md) with the Recorder
// the context carries.
func record(ctx context.Context, event, outcome string, id identity.Identity, rcUserID, reason string) {
	audit.Record(ctx, audit.Event{Event: event, Outcome: outcome, Subject: id.Subject, Source: id.Source,
		RCUserID: rcUserID, Reason: reason})
}

// recordFailure writes the audit event for a request the Broker could not
// give a token: a refusal (the person may not have the chat: event
// refused), a mint held back (event mint, outcome refused) or a failure
// (event mint, outcome failed). A chat-side logout is not recorded again:
// the logout was, when it happened.
func recordFailure(ctx context.Context, id identity.Identity, err error) {
	if err == nil || errors.Is(err, ErrChatLoggedOut) {
		return
	}
	var throttled *ThrottledError
	if errors.As(err, &throttled) {
		record(ctx, audit.Mint, audit.Denied, id, "", "a new token was minted for this person moments ago")
		return
	}
	if reason, ok := refusalReason(err); ok {
		record(ctx, audit.Refused, audit.Denied, id, "", reason)
		return
	}
	record(ctx, audit.Mint, audit.Failed, id, "", FailureReason(err))
}

// refusalReason names why the person may not have the chat, for the errors
// that are decisions, not failures.
func refusalReason(err error) (string, bool) {
	switch {
	case errors.Is(err, identity.ErrAccessDenied):
		return "access policy", true
	case errors.Is(err, ErrDeactivated):
		return "Rocket.Chat user deactivated", true
	case errors.Is(err, ErrReservedEmail):
		return "e-mail address in the placeholder domain", true
	case errors.Is(err, ErrConflict):
		return "another Rocket.Chat user has this person's username or e-mail", true
	case errors.Is(err, store.ErrLinkTaken):
		return "Rocket.Chat user linked to another person", true
	}
	return "", false
}

// FailureReason is a short phrase for the audit log saying why an
// operation failed, without the error's text (which may quote upstream
// answers): "Rocket.Chat answered 500", "Rocket.Chat unreachable",
// "timed out", … The log line with the same request_id has the details.
func FailureReason(err error) string {
	var rce *rocketchat.Error
	switch {
	case errors.Is(err, rocketchat.ErrBudgetSpent):
		return "rcsso's budget of Rocket.Chat calls is spent"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, ErrUnavailable):
		return "minting backend unreachable"
	}
	if _, limited := rocketchat.IsRateLimited(err); limited {
		return "Rocket.Chat rate limit"
	}
	if rocketchat.IsUnavailable(err) {
		return "Rocket.Chat unreachable"
	}
	if errors.As(err, &rce) && rce.Status != 0 {
		return fmt.Sprintf("Rocket.Chat answered %d", rce.Status)
	}
	return "internal error (see the log line with this request_id)"
}
