package rocketchat

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultMaxConcurrent is Options.MaxConcurrent when it is not set.
const DefaultMaxConcurrent = 8

// ErrBudgetSpent means rcsso held a call back without sending it: its
// budget of calls a minute to that Rocket.Chat route (Budget) is spent.
// It comes wrapped in an *Error whose RetryAfter says when the budget is
// renewed; IsRateLimited reports it like Rocket.Chat's own 429.
var ErrBudgetSpent = errors.New("rocketchat: rcsso's budget of calls to this route is spent")

// Counter is the store capability Budget uses: a fixed-window counter that
// every rcsso instance on the store shares (rcsso's store.Store has it).
// Count adds delta to key and returns the new value and the end of its
// window, which starts with the first count after the previous one ended.
type Counter interface {
	Count(ctx context.Context, key string, delta int64, window time.Duration) (int64, time.Time, error)
}

// Budget paces the calls that Rocket.Chat's REST rate limiter counts
// against rcsso whatever permissions its service account has: those made
// as a person or without credentials (login, me, logout). Rocket.Chat
// allows API_Enable_Rate_Limiter_Limit_Calls_Default (10) calls per route
// per client IP per API_Enable_Rate_Limiter_Limit_Time_Default (60 s) and
// exempts only users with the permission api-bypass-rate-limit, which a
// person does not have (protocol spec §4.14). rcsso's calls as its service
// account (users.*) are not counted: admin and bot have that permission.
//
// Each such route gets PerMinute calls per minute, counted in the store
// and so shared by every rcsso instance on it (instances behind one
// address share one Rocket.Chat allowance). A call beyond it is not sent:
// it fails at once with ErrBudgetSpent. A 429 from Rocket.Chat on a paced
// route spends the rest of the minute for every instance.
type Budget struct {
	// Counter keeps the counts: the store.
	Counter Counter
	// PerMinute is the number of calls per route per minute; 0 or less
	// paces nothing.
	PerMinute int
}

// budgetKey starts the store counter of a paced route.
const budgetKey = "rocketchat-calls:"

// budgetWindow is the budget's window.
const budgetWindow = time.Minute

// spend counts one call to endpoint; an *Error wrapping ErrBudgetSpent when
// the budget is spent. A store failure lets the call through (pacing is a
// courtesy to Rocket.Chat; the request should not fail for it).
func (c *Client) spend(ctx context.Context, endpoint string) *Error {
	b := c.budget
	if b == nil || b.Counter == nil || b.PerMinute <= 0 {
		return nil
	}
	n, until, err := b.Counter.Count(ctx, budgetKey+endpoint, 1, budgetWindow)
	if err != nil {
		c.log.Warn("could not count a call against the Rocket.Chat budget; sending it", "endpoint", endpoint, "err", err)
		return nil
	}
	if n <= int64(b.PerMinute) {
		return nil
	}
	wait := max(until.Sub(c.now()), time.Second)
	return &Error{Endpoint: endpoint, RetryAfter: wait, Err: ErrBudgetSpent,
		Message: fmt.Sprintf("not sent: rcsso's budget of %d calls a minute to this Rocket.Chat route is spent (rocketchat.calls_per_minute)", b.PerMinute)}
}

// exhaust spends the rest of endpoint's budget window after Rocket.Chat
// answered 429, so that no instance tries again before the window ends.
func (c *Client) exhaust(ctx context.Context, endpoint string) {
	b := c.budget
	if b == nil || b.Counter == nil || b.PerMinute <= 0 {
		return
	}
	if _, _, err := b.Counter.Count(ctx, budgetKey+endpoint, int64(b.PerMinute), budgetWindow); err != nil {
		c.log.Warn("could not record Rocket.Chat's rate limit in the budget", "endpoint", endpoint, "err", err)
	}
}

// slot waits for one of the MaxConcurrent call slots; release gives it
// back. The error is the context's, as an *Error.
func (c *Client) slot(ctx context.Context, endpoint string) (release func(), err *Error) {
	select {
	case c.slots <- struct{}{}:
		return c.release, nil
	default:
	}
	select {
	case c.slots <- struct{}{}:
		return c.release, nil
	case <-ctx.Done():
		e := transportError(ctx, endpoint, ctx.Err())
		e.Message += " while waiting for a free call slot (rocketchat.max_concurrent_calls)"
		return nil, e
	}
}

func (c *Client) release() { <-c.slots }
