// Package rocketchat is a typed client for the subset of Rocket.Chat's REST
// API that rcsso uses: server info, login (password and resume), the
// caller's own user, logout, user management (users.info, users.create,
// users.update, users.createToken, users.list), and room and team
// memberships for the rooms sync (channels.*, groups.*, teams.*; rooms.go).
//
// It speaks to every server generation described in the protocol spec
// (reference/rocketchat-protocol.md §4, §8): 3.x–6.x Restivus envelopes, 7.x
// and 8.x. Every failure is returned as an *Error carrying the HTTP status and
// Rocket.Chat's errorType; the Is* predicates classify them.
//
// Secrets (passwords, resume tokens, personal access tokens and the
// createToken secret) travel only in request headers and JSON bodies, never
// in URLs, and never appear in logs or error strings.
package rocketchat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxBodyBytes caps how much of a response body the client reads (1 MiB).
// Larger responses fail with an *Error instead of exhausting memory.
const maxBodyBytes = 1 << 20

// maxRetries is how many times an idempotent GET is retried after a
// transport error or a 502/503/504 (so at most 3 attempts in total).
const maxRetries = 2

// retryBaseDelay is the first backoff delay; it doubles per retry and is
// jittered to between 50% and 100% of its value.
const retryBaseDelay = 100 * time.Millisecond

// defaultUserAgent is sent when Options.UserAgent is empty.
const defaultUserAgent = "rcsso"

// Options configure a Client. Only BaseURL is required.
type Options struct {
	// BaseURL is the Rocket.Chat origin, optionally with a path prefix when
	// Rocket.Chat is served below one (ROOT_URL with a path), e.g.
	// "http://127.0.0.1:3000" or "https://example.com/chat". It must be an
	// absolute http(s) URL without user info, query or fragment.
	BaseURL string
	// HTTPClient sends the requests. nil → a client with a tuned clone of
	// http.DefaultTransport. The client is copied; when its CheckRedirect is
	// nil the copy does not follow redirects (a redirect would forward
	// X-Auth-Token to another place), so a 3xx becomes an *Error.
	HTTPClient *http.Client
	// Timeout bounds each method call, retries included. 0 → 10s. A context
	// deadline that is earlier wins.
	Timeout time.Duration
	// Logger receives debug records (method, endpoint, status, attempt,
	// duration) and warnings on retries. nil → discard. Tokens, passwords
	// and secrets are never logged.
	Logger *slog.Logger
	// UserAgent is the User-Agent header. "" → "rcsso".
	UserAgent string
	// MaxConcurrent bounds the requests in flight at once (each attempt
	// holds one slot while it is sent and read); a call waits for a free
	// slot as long as its context lets it. 0 → DefaultMaxConcurrent.
	MaxConcurrent int
	// Budget, when set, paces the calls Rocket.Chat rate-limits for every
	// caller without api-bypass-rate-limit (see Budget).
	Budget *Budget
}

// Client is a Rocket.Chat REST client. It is safe for concurrent use. Create
// it with New.
type Client struct {
	base    *url.URL
	hc      *http.Client
	timeout time.Duration
	log     *slog.Logger
	ua      string
	slots   chan struct{} // one value per request in flight
	budget  *Budget

	// Hooks replaced by tests.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// New returns a Client for o.BaseURL. It fails when BaseURL is not an
// absolute http or https URL with a host, or has user info, a query or a
// fragment.
func New(o Options) (*Client, error) {
	base, err := parseBaseURL(o.BaseURL)
	if err != nil {
		return nil, err
	}
	var hc http.Client
	if o.HTTPClient != nil {
		hc = *o.HTTPClient
	} else {
		hc = http.Client{Transport: defaultTransport()}
	}
	if hc.CheckRedirect == nil {
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ua := o.UserAgent
	if ua == "" {
		ua = defaultUserAgent
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	return &Client{
		base:    base,
		hc:      &hc,
		timeout: timeout,
		log:     log,
		ua:      ua,
		slots:   make(chan struct{}, o.MaxConcurrent),
		budget:  o.Budget,
		now:     time.Now,
		sleep:   sleepCtx,
	}, nil
}

// BaseURL returns a copy of the parsed base URL (no trailing slash in its
// path).
func (c *Client) BaseURL() *url.URL {
	u := *c.base
	return &u
}

func parseBaseURL(s string) (*url.URL, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("rocketchat: base URL is empty")
	}
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("rocketchat: base URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("rocketchat: base URL %q: want an absolute http:// or https:// URL", u.Redacted())
	case u.Host == "":
		return nil, fmt.Errorf("rocketchat: base URL %q: no host", u.Redacted())
	case u.User != nil:
		return nil, fmt.Errorf("rocketchat: base URL %q: user info is not allowed (credentials go in headers)", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("rocketchat: base URL %q: a query string is not allowed", u.Redacted())
	case u.Fragment != "":
		return nil, fmt.Errorf("rocketchat: base URL %q: a fragment is not allowed", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	u.Opaque = ""
	return u, nil
}

func defaultTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 100
	t.MaxIdleConnsPerHost = 32
	t.IdleConnTimeout = 90 * time.Second
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ExpectContinueTimeout = time.Second
	t.ResponseHeaderTimeout = 0 // the per-call timeout covers this
	return t
}

// call describes one REST call.
type call struct {
	method   string       // http.MethodGet or http.MethodPost
	endpoint string       // name for errors and logs, e.g. "users.create"
	path     string       // path below the base URL, e.g. "/api/v1/users.create"
	query    url.Values   // never secrets
	body     any          // JSON body for POST; nil → no body
	cr       *Credentials // nil → unauthenticated
	secrets  []string     // values redacted from error messages
	paced    bool         // counted against the Budget (rate limited for persons)
	// twoFactor, when set, is the sha256 hex of the caller's password,
	// sent as x-2fa-code with x-2fa-method: password.
	twoFactor string
}

// errInvalidArgument marks errors raised before any request is sent.
var errInvalidArgument = errors.New("invalid argument")

func invalidArg(endpoint, msg string) *Error {
	return &Error{Endpoint: endpoint, Message: msg, Err: errInvalidArgument}
}

// do performs rq and decodes a successful JSON body into out (may be nil).
// It always returns nil or an *Error.
func (c *Client) do(ctx context.Context, rq call, out any) error {
	if rq.cr != nil {
		if err := checkCredentials(*rq.cr); err != "" {
			return invalidArg(rq.endpoint, err)
		}
		rq.secrets = append(rq.secrets, rq.cr.AuthToken)
	}
	if rq.twoFactor != "" {
		rq.secrets = append(rq.secrets, rq.twoFactor)
	}
	var payload []byte
	if rq.body != nil {
		b, err := json.Marshal(rq.body)
		if err != nil {
			return &Error{Endpoint: rq.endpoint, Message: "encode request body", Err: err}
		}
		payload = b
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	idempotent := rq.method == http.MethodGet
	for attempt := 0; ; attempt++ {
		if rq.paced {
			if err := c.spend(ctx, rq.endpoint); err != nil {
				c.log.LogAttrs(ctx, slog.LevelDebug, "rocketchat call held back: budget spent",
					slog.String("endpoint", rq.endpoint), slog.Duration("retry_after", err.RetryAfter))
				return err
			}
		}
		release, err := c.slot(ctx, rq.endpoint)
		if err != nil {
			return err
		}
		start := c.now()
		err = c.attempt(ctx, rq, payload, out)
		release()
		if rq.paced && err != nil && err.Status == http.StatusTooManyRequests {
			c.exhaust(ctx, rq.endpoint)
		}
		if err == nil {
			c.log.LogAttrs(ctx, slog.LevelDebug, "rocketchat call",
				slog.String("method", rq.method), slog.String("endpoint", rq.endpoint),
				slog.Int("attempt", attempt+1), slog.Duration("duration", c.now().Sub(start)))
			return nil
		}
		err.redact(rq.secrets)
		retry := idempotent && attempt < maxRetries && err.retryable() && ctx.Err() == nil
		level := slog.LevelDebug
		if retry {
			level = slog.LevelWarn
		}
		c.log.LogAttrs(ctx, level, "rocketchat call failed",
			slog.String("method", rq.method), slog.String("endpoint", rq.endpoint),
			slog.Int("status", err.Status), slog.String("error_type", err.ErrorType),
			slog.Int("attempt", attempt+1), slog.Bool("retry", retry),
			slog.Duration("duration", c.now().Sub(start)))
		if !retry {
			return err
		}
		if serr := c.sleep(ctx, backoff(attempt)); serr != nil {
			// The deadline or cancellation hit during backoff: report
			// the last failure, with the context error attached.
			if err.Err == nil {
				err.Err = serr
			} else {
				err.Err = errors.Join(err.Err, serr)
			}
			return err
		}
	}
}

// attempt sends one request and decodes its response.
func (c *Client) attempt(ctx context.Context, rq call, payload []byte, out any) *Error {
	u := *c.base
	u.Path = c.base.Path + rq.path
	u.RawPath = ""
	u.RawQuery = ""
	if len(rq.query) > 0 {
		u.RawQuery = rq.query.Encode()
	}
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, rq.method, u.String(), rd)
	if err != nil {
		return &Error{Endpoint: rq.endpoint, Message: "build request", Err: unwrapURLError(err)}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if rq.cr != nil {
		req.Header.Set("X-User-Id", rq.cr.UserID)
		req.Header.Set("X-Auth-Token", rq.cr.AuthToken)
	}
	if rq.twoFactor != "" {
		req.Header.Set("X-2fa-Code", rq.twoFactor)
		req.Header.Set("X-2fa-Method", "password")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return transportError(ctx, rq.endpoint, err)
	}
	defer func() {
		// Drain a little so the connection can be reused, then close.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return transportError(ctx, rq.endpoint, err)
	}
	if len(body) > maxBodyBytes {
		return &Error{Endpoint: rq.endpoint, Status: resp.StatusCode,
			Message: fmt.Sprintf("response body exceeds %d bytes", maxBodyBytes)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := decodeError(rq.endpoint, resp.StatusCode, resp.Header, body, c.now())
		if resp.StatusCode >= 300 && resp.StatusCode < 400 {
			e.Message = "unexpected redirect" + redirectTarget(resp.Header.Get("Location")) +
				" (check the Rocket.Chat base URL: scheme, host and path prefix)"
		}
		return e
	}
	if e := checkSuccessBody(rq.endpoint, resp.StatusCode, resp.Header, body, c.now()); e != nil {
		return e
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return &Error{Endpoint: rq.endpoint, Status: resp.StatusCode,
				Message: "decode response", Err: err}
		}
	}
	return nil
}

// checkSuccessBody rejects 2xx bodies that are not a JSON object or that
// signal failure with "success":false or "status":"error".
func checkSuccessBody(endpoint string, status int, h http.Header, body []byte, now time.Time) *Error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return &Error{Endpoint: endpoint, Status: status, Message: describeNonJSON(h.Get("Content-Type"), body)}
	}
	failed := false
	if raw, ok := m["success"]; ok {
		var b bool
		if json.Unmarshal(raw, &b) == nil && !b {
			failed = true
		}
	}
	if s, _ := rawString(m["status"]); s == "error" {
		failed = true
	}
	if failed {
		return decodeError(endpoint, status, h, body, now)
	}
	return nil
}

func redirectTarget(loc string) string {
	if loc == "" {
		return ""
	}
	u, err := url.Parse(loc)
	if err != nil {
		return ""
	}
	// Only scheme, host and path: never echo a query string.
	u.User = nil
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	return " to " + u.String()
}

func checkCredentials(cr Credentials) string {
	switch {
	case cr.UserID == "" || cr.AuthToken == "":
		return "missing credentials (user ID and auth token are both required)"
	case !validHeaderValue(cr.UserID):
		return "credentials: user ID contains invalid characters"
	case !validHeaderValue(cr.AuthToken):
		return "credentials: auth token contains invalid characters"
	}
	return ""
}

// validHeaderValue reports whether s is printable ASCII without leading or
// trailing space, so it can be sent as a header without net/http quoting it
// in an error.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// transportError wraps a failure to send or read a request. Timeouts always
// satisfy errors.Is(err, context.DeadlineExceeded).
func transportError(ctx context.Context, endpoint string, err error) *Error {
	err = unwrapURLError(err)
	var ne net.Error
	timedOut := errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout())
	if timedOut && !errors.Is(err, context.DeadlineExceeded) {
		err = &timeoutError{err}
	}
	msg := "Rocket.Chat cannot be reached"
	switch {
	case timedOut:
		msg = "request timed out"
	case errors.Is(err, context.Canceled):
		msg = "request canceled"
	}
	return &Error{Endpoint: endpoint, Message: msg, Err: err}
}

// timeoutError marks a transport timeout (e.g. http.Client.Timeout) as a
// context.DeadlineExceeded.
type timeoutError struct{ err error }

func (e *timeoutError) Error() string        { return e.err.Error() }
func (e *timeoutError) Unwrap() error        { return e.err }
func (e *timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// unwrapURLError drops *url.Error's "Get <url>:" prefix so error strings do
// not carry URLs (and query strings).
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// backoff returns the jittered delay before retry number attempt+1:
// retryBaseDelay·2^attempt scaled by a random factor in [0.5, 1).
func backoff(attempt int) time.Duration {
	d := retryBaseDelay << attempt
	return d/2 + rand.N(d/2)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
