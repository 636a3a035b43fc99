package rocketchat

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Error is the error every Client method returns (as error; use errors.As or
// the Is* predicates). It covers non-2xx responses, 2xx bodies with
// "success":false or "status":"error", undecodable bodies, transport
// failures and timeouts, and invalid arguments rejected before sending.
//
// Error bodies of all server generations are understood (protocol spec
// §4.0, §4.1):
//
//   - 3.x–6.x Restivus 401: {"status":"error","message":"…"}
//   - 7.x 401: {"success":false,"error":"…","status":"error","message":"…"}
//   - 8.x: {"success":false,"error":"…"}
//   - API.v1.failure: {"success":false,"error":"<reason> [<code>]","errorType":"<code>","details":…}
//   - ajv: {"success":false,"error":"must NOT … [invalid-params]","errorType":"invalid-params"}
//   - 3.x check(): {"success":false,"error":"Match error: …"} (no errorType)
//   - /login: {"status":"error","error":"<code>"|<number>,"message":"<reason>"}
//   - 9.0 refusals (PR #43214): 403 {"success":false,"error":"<reason> [<code>]","errorType":"error-forbidden"}
//
// No field ever holds a token, password or secret: values the call sent as
// secrets are replaced by "[redacted]" if the server echoes them.
type Error struct {
	// Endpoint names the call, e.g. "users.create", "login", "info"; no
	// query string.
	Endpoint string
	// Status is the HTTP status code; 0 when no response was received
	// (transport error, timeout, cancellation, invalid argument).
	Status int
	// ErrorType is Rocket.Chat's error code: the body "errorType"; for
	// /login the string "error" field (e.g. "error-user-is-not-activated",
	// "totp-required", "Unauthorized"); otherwise the code of a trailing
	// Meteor "reason [code]" in the message (e.g. "error-too-many-requests",
	// "error-not-authorized"); or "".
	ErrorType string
	// Message is the human-readable text: the body "error" (when it is not
	// just the code), else "message", else "reason", with a trailing
	// " [<ErrorType>]" removed. For non-JSON bodies it describes the body
	// (e.g. the <title> of an HTML 502 page). For transport errors it is
	// "Rocket.Chat cannot be reached", "request timed out" or "request
	// canceled". Single line, at most 512 characters.
	Message string
	// Code is the original Meteor error code of a refusal that Rocket.Chat
	// 9.0 reports as errorType "error-forbidden" and keeps only in the
	// message's trailing "[<code>]" (PR #43214), e.g. "error-not-allowed";
	// "" otherwise.
	Code string
	// RetryAfter is how long to wait before retrying a rate-limited call
	// (429 or error-too-many-requests; spec §4.0, §4.14): from the
	// X-RateLimit-Reset header (epoch milliseconds), else the "wait N
	// seconds" text, else a Retry-After header; 0 when unknown.
	RetryAfter time.Duration
	// Err is the underlying error: the transport error (timeouts satisfy
	// errors.Is(err, context.DeadlineExceeded)) or a JSON decoding error.
	Err error
	// TwoFactor is Rocket.Chat's description of the second factor it
	// wants, from the details of a totp-required or totp-invalid error;
	// nil otherwise (see IsTwoFactorRequired).
	TwoFactor *TwoFactor

	// code is a numeric "error" field (Meteor.Error code such as 403 on a
	// rejected /login resume token).
	code int
}

// Error returns a one-line description such as
// "rocketchat: users.create: 400 error-field-unavailable: alice is already in use :(".
// It never contains tokens, passwords, secrets or header values.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("rocketchat: ")
	if e.Endpoint != "" {
		b.WriteString(e.Endpoint)
	} else {
		b.WriteString("request")
	}
	b.WriteString(": ")
	msg := e.Message
	if msg == e.ErrorType {
		msg = ""
	}
	if e.Status != 0 {
		b.WriteString(strconv.Itoa(e.Status))
		switch {
		case e.ErrorType != "":
			b.WriteString(" " + e.ErrorType)
			if e.Code != "" {
				b.WriteString(" (" + e.Code + ")")
			}
			if msg != "" {
				b.WriteString(": " + msg)
			}
		case msg != "":
			b.WriteString(": " + msg)
		default:
			if t := http.StatusText(e.Status); t != "" {
				b.WriteString(" " + t)
			}
		}
	} else {
		if msg == "" {
			msg = "request failed"
		}
		b.WriteString(msg)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after " + e.RetryAfter.Round(time.Millisecond).String() + ")")
	}
	return cleanText(b.String(), 1024)
}

// Unwrap returns Err.
func (e *Error) Unwrap() error { return e.Err }

// retryable reports whether an idempotent call may be retried after e:
// transport errors (not timeouts, cancellations or invalid arguments) and
// 502/503/504.
func (e *Error) retryable() bool {
	switch e.Status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	case 0:
		return e.Err != nil && !errors.Is(e.Err, errInvalidArgument) && !errors.Is(e.Err, ErrBudgetSpent) &&
			!errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, context.DeadlineExceeded)
	}
	return false
}

// redact replaces every occurrence of a secret in the server-provided text.
func (e *Error) redact(secrets []string) {
	for _, s := range secrets {
		if s == "" {
			continue
		}
		e.Message = strings.ReplaceAll(e.Message, s, "[redacted]")
		e.ErrorType = strings.ReplaceAll(e.ErrorType, s, "[redacted]")
		e.Code = strings.ReplaceAll(e.Code, s, "[redacted]")
	}
}

func asError(err error) (*Error, bool) {
	var e *Error
	if errors.As(err, &e) && e != nil {
		return e, true
	}
	return nil, false
}

// IsUnauthorized reports whether Rocket.Chat rejected the credentials: HTTP
// 401 on any endpoint (spec §4.0: "You must be logged in to do this.", and
// every /login failure, §4.1), or on /login a 403 — HTTP status or Meteor
// error code — such as "You've been logged out by the server. Please log in
// again." / "Your session has expired." for a rejected resume token (§2.2).
// A 403 on other endpoints is a permission problem, not this.
func IsUnauthorized(err error) bool {
	e, ok := asError(err)
	if !ok {
		return false
	}
	if e.Status == http.StatusUnauthorized {
		return true
	}
	if e.Endpoint == "login" && e.Status != 0 {
		if e.Status == http.StatusForbidden || e.code == http.StatusForbidden {
			return true
		}
		m := strings.ToLower(e.Message)
		return strings.Contains(m, "logged out by the server") || strings.Contains(m, "session has expired")
	}
	return false
}

// IsRateLimited reports whether the call hit Rocket.Chat's rate limiter
// (HTTP 429 or errorType error-too-many-requests, spec §4.0, §4.14; or
// Meteor's DDPRateLimiter: too-many-requests in a DDP result), or was
// held back because rcsso's own share of it is spent (ErrBudgetSpent), and
// how long to wait (0 when unknown). Calls are never retried automatically
// on 429.
func IsRateLimited(err error) (time.Duration, bool) {
	e, ok := asError(err)
	if !ok {
		return 0, false
	}
	if e.Status == http.StatusTooManyRequests || e.ErrorType == "error-too-many-requests" || e.ErrorType == "too-many-requests" ||
		errors.Is(e.Err, ErrBudgetSpent) {
		return e.RetryAfter, true
	}
	return 0, false
}

// IsNotFound reports whether Rocket.Chat said the user does not exist:
// users.info "User not found." (6.x+, 400; spec §4.4), the 3.x wording
// 'Failed to get the user data for the userId of "…".', or errorType
// error-invalid-user / error-invalid-user-id. A bare HTTP 404 (for instance
// from a proxy or a wrong base path) is not "not found".
func IsNotFound(err error) bool {
	e, ok := asError(err)
	if !ok || e.Status < 400 || e.Status > 499 {
		return false
	}
	switch e.ErrorType {
	case "error-invalid-user", "error-invalid-user-id":
		return true
	}
	m := strings.TrimSpace(e.Message)
	return strings.EqualFold(strings.TrimSuffix(m, "."), "User not found") ||
		strings.HasPrefix(m, "Failed to get the user data")
}

// IsFieldUnavailable reports errorType error-field-unavailable: the
// username or email is already in use (case-insensitive; usernames also
// collide with team names) on users.create / users.update (spec §4.5).
func IsFieldUnavailable(err error) bool {
	e, ok := asError(err)
	return ok && e.ErrorType == "error-field-unavailable"
}

// IsUnavailable reports whether Rocket.Chat cannot be reached: a transport
// error, a timeout, or an HTTP 5xx (including a proxy's HTML 502). Caller
// cancellations (context.Canceled) and invalid arguments are not.
func IsUnavailable(err error) bool {
	e, ok := asError(err)
	if !ok {
		return false
	}
	if e.Status >= 500 && e.Status <= 599 {
		return true
	}
	return e.Status == 0 && e.Err != nil && !errors.Is(e.Err, errInvalidArgument) &&
		!errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, ErrBudgetSpent)
}

// refusalCodes are the Meteor error codes with which Rocket.Chat refuses an
// action the caller may not take (6.x–9.0), as errorType, as the bracketed
// code of the message, or (9.0) as Code.
var refusalCodes = map[string]bool{
	"error-action-not-allowed": true, "error-not-allowed": true, "not-allowed": true,
	"error-not-authorized": true, "not-authorized": true, "not_authorized": true, "no-permission": true,
	"error-unauthorized": true, "unauthorized": true, "error-forbidden": true, "forbidden": true,
}

// IsForbidden reports whether Rocket.Chat refused the call because the
// caller may not do it (a missing permission, or a users.createToken
// secret that does not match): HTTP 403 on any endpoint but /login (3.x–8.x
// {"error":"unauthorized"|"forbidden"}, route permissions "… [error-unauthorized]"
// or "[error-forbidden]", 9.0 errorType "error-forbidden", PR #43214), or a
// 4xx whose code is a refusal: error-action-not-allowed ("Adding user is
// not allowed"), error-not-allowed, error-not-authorized ("Not
// authorized"), not-authorized, no-permission. A refused invalid role
// name ("The field Roles consist invalid role …") is not a refusal of the
// caller and reports false. MissingPermission names the permission.
func IsForbidden(err error) bool {
	e, ok := asError(err)
	if !ok || e.Endpoint == "login" || e.Status < 400 || e.Status > 499 || e.Status == http.StatusTooManyRequests {
		return false
	}
	if strings.Contains(e.Message, "invalid role") {
		return false
	}
	if e.Status == http.StatusForbidden {
		return true
	}
	if refusalCodes[e.ErrorType] || refusalCodes[e.Code] {
		return true
	}
	return refusalCodes[strings.ToLower(strings.TrimSpace(e.Message))]
}

// endpointPermission is the Rocket.Chat permission each endpoint rcsso
// calls needs when it acts on another user (protocol spec §4.5–§4.11;
// RocketChat/Rocket.Chat apps/meteor/app/lib/server/functions/saveUser/validateUserData.ts
// @78da2ffbabc4d5aa21ef2d7aa2ad4dbc4725e164 and validateUserEditing.ts
// @262bf4de27ac1532562fa4f39ff09b5bc97064e2, apps/meteor/server/meteor-methods/auth/createToken.ts
// @d7c37a600f96d50224153b78e28518e95c9d04fa).
var endpointPermission = map[string]string{
	"users.create":          "create-user",
	"users.update":          "edit-other-user-info",
	"users.createToken":     "user-generate-access-token",
	"users.setAvatar":       "edit-other-user-avatar",
	"users.delete":          "delete-user",
	"users.setActiveStatus": "edit-other-user-active-status",
	"users.list":            "view-d-room",
	"users.logout":          "logout-other-user",
	"users.info":            "view-full-other-user-info",
	// The rooms sync (rooms.go; RocketChat/Rocket.Chat
	// apps/meteor/app/lib/server/methods/addUsersToRoom.ts,
	// apps/meteor/server/methods/removeUserFromRoom.ts,
	// apps/meteor/server/api/v1/teams.ts).
	"channels.invite":    "add-user-to-any-c-room",
	"groups.invite":      "add-user-to-joined-room",
	"channels.kick":      "remove-user",
	"groups.kick":        "remove-user",
	"teams.addMembers":   "edit-team-member",
	"teams.removeMember": "edit-team-member",
	"teams.info":         "view-all-teams",
}

// MissingPermission names the Rocket.Chat permission whose absence
// explains a refusal (IsForbidden) of a call rcsso makes: "assign-roles"
// for "Assign roles is not allowed", "assign-admin-role" for "Assigning
// admin is not allowed", "edit-other-user-active-status" for users.update's
// "Not allowed" (the active flag), else the endpoint's permission
// ("create-user" for users.create, …). For users.createToken the secret may
// be the cause instead. "" when err is not a refusal or the endpoint is
// not one rcsso calls.
func MissingPermission(err error) string {
	if !IsForbidden(err) {
		return ""
	}
	e, _ := asError(err)
	switch m := strings.ToLower(e.Message); {
	case strings.Contains(m, "assign roles"):
		return "assign-roles"
	case strings.Contains(m, "assigning admin"):
		return "assign-admin-role"
	case e.Endpoint == "users.update" && m == "not allowed":
		return "edit-other-user-active-status"
	}
	return endpointPermission[e.Endpoint]
}

// IsTokensBug reports Rocket.Chat 7.13.x bug #40598 (spec §4.7, §7):
// users.createToken answers 400 "Cannot read properties of undefined
// (reading 'tokens')" for a user without resume tokens. Retrying once
// usually succeeds.
func IsTokensBug(err error) bool {
	e, ok := asError(err)
	return ok && e.Status == http.StatusBadRequest && strings.Contains(e.Message, "reading 'tokens'")
}

// maxMessageLen bounds Error.Message (in runes).
const maxMessageLen = 512

// maxRetryAfter caps Error.RetryAfter against bogus headers.
const maxRetryAfter = 24 * time.Hour

var (
	// waitRe matches Rocket.Chat's rate-limit text "You must wait 59 seconds".
	waitRe = regexp.MustCompile(`(?i)\bwait (\d{1,9}) seconds?\b`)
	// bracketRe matches a Meteor.Error message "<reason> [<code>]".
	bracketRe = regexp.MustCompile(`^(?s)(.*?)\s*\[([A-Za-z0-9_.:-]{1,100})\]$`)
	// titleRe extracts an HTML <title>.
	titleRe = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
)

// decodeError builds the *Error for a failed response (non-2xx, or a 2xx
// body that signals failure). It never panics, whatever the input.
func decodeError(endpoint string, status int, h http.Header, body []byte, now time.Time) *Error {
	e := &Error{Endpoint: endpoint, Status: status}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		if len(strings.TrimSpace(string(body))) > 0 {
			e.Message = describeNonJSON(h.Get("Content-Type"), body)
		}
	} else {
		parseEnvelope(e, m)
	}
	e.Message = cleanText(e.Message, maxMessageLen)
	e.ErrorType = cleanText(e.ErrorType, 100)
	e.Code = cleanText(e.Code, 100)
	if (status == http.StatusTooManyRequests || e.ErrorType == "error-too-many-requests" || e.ErrorType == "too-many-requests") && e.RetryAfter == 0 {
		e.RetryAfter = retryAfter(h, e.Message, now)
	}
	return e
}

// parseEnvelope fills ErrorType, Message and code from a JSON error body.
func parseEnvelope(e *Error, m map[string]json.RawMessage) {
	errorType, _ := rawString(m["errorType"])
	message, _ := rawString(m["message"])
	reason, _ := rawString(m["reason"])

	var errStr, nestedCode string
	details := m["details"]
	if raw, ok := m["error"]; ok {
		if s, ok := rawString(raw); ok {
			errStr = s
		} else if n, ok := rawInt(raw); ok {
			e.code = n
		} else {
			// A serialized Meteor.Error object:
			// {"error":{"error":"<code>","reason":"…","message":"…"}}.
			var inner map[string]json.RawMessage
			if json.Unmarshal(raw, &inner) == nil && inner != nil {
				if s, ok := rawString(inner["error"]); ok && codeLike(s) {
					nestedCode = s
				} else if n, ok := rawInt(inner["error"]); ok {
					e.code = n
				}
				if s, _ := rawString(inner["reason"]); s != "" && reason == "" {
					reason = s
				}
				if s, _ := rawString(inner["message"]); s != "" && message == "" {
					message = s
				}
				if s, _ := rawString(inner["errorType"]); s != "" && errorType == "" && s != "Meteor.Error" {
					errorType = s
				}
				if len(details) == 0 {
					details = inner["details"]
				}
			}
		}
	}

	e.ErrorType = strings.TrimSpace(errorType)
	if e.ErrorType == "" && e.Endpoint == "login" && codeLike(errStr) {
		e.ErrorType = errStr
	}
	if e.ErrorType == "" {
		e.ErrorType = nestedCode
	}

	var msg string
	switch {
	case errStr != "" && errStr != e.ErrorType:
		msg = errStr
	case message != "":
		msg = message
	case reason != "":
		msg = reason
	}
	msg = strings.TrimSpace(msg)
	if sm := bracketRe.FindStringSubmatch(msg); sm != nil {
		if n, err := strconv.Atoi(sm[2]); err == nil {
			// A numeric Meteor.Error code: "reason [403]".
			if e.code == 0 || e.code == n {
				e.code = n
				msg = strings.TrimSpace(sm[1])
			}
		} else {
			if e.ErrorType == "" {
				e.ErrorType = sm[2]
			}
			if e.ErrorType == "error-forbidden" && sm[2] != e.ErrorType {
				e.Code = sm[2] // 9.0: the original code survives only here
			}
			if sm[2] == e.ErrorType || e.Code == sm[2] {
				msg = strings.TrimSpace(sm[1])
			}
		}
	}
	e.Message = msg
	if e.ErrorType == "totp-required" || e.ErrorType == "totp-invalid" {
		e.TwoFactor = twoFactorFrom(details)
	}
	if e.ErrorType == "too-many-requests" {
		// DDPRateLimiter: details.timeToReset in milliseconds.
		var d struct {
			TimeToReset float64 `json:"timeToReset"`
		}
		if json.Unmarshal(details, &d) == nil && d.TimeToReset > 0 && d.TimeToReset < float64(maxRetryAfter/time.Millisecond) {
			e.RetryAfter = time.Duration(d.TimeToReset) * time.Millisecond
		}
	}
}

// codeLike reports whether s looks like an error code ("error-x",
// "totp-required", "Unauthorized") rather than a sentence.
func codeLike(s string) bool {
	if s == "" || len(s) > 100 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || r == ':' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			return false
		}
	}
	return true
}

// retryAfter derives the wait of a rate-limited response. X-RateLimit-Reset
// is epoch milliseconds in Rocket.Chat; epoch seconds and delta seconds are
// tolerated.
func retryAfter(h http.Header, msg string, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("X-RateLimit-Reset")); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n > 0 {
			var d time.Duration
			switch {
			case n >= 1e11:
				d = time.UnixMilli(n).Sub(now)
			case n >= 1e9:
				d = time.Unix(n, 0).Sub(now)
			default:
				d = time.Duration(n) * time.Second
			}
			if d > 0 {
				return capRetry(d.Round(time.Millisecond))
			}
		}
	}
	if sm := waitRe.FindStringSubmatch(msg); sm != nil {
		if n, err := strconv.Atoi(sm[1]); err == nil && n > 0 {
			return capRetry(time.Duration(n) * time.Second)
		}
	}
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 && n < 1e9 {
			return capRetry(time.Duration(n) * time.Second)
		}
		if t, err := http.ParseTime(v); err == nil && t.After(now) {
			return capRetry(t.Sub(now).Round(time.Second))
		}
	}
	return 0
}

func capRetry(d time.Duration) time.Duration {
	return min(d, maxRetryAfter)
}

// describeNonJSON summarizes a body that is not a JSON object, e.g.
// `unexpected non-JSON response (text/html): 502 Bad Gateway`.
func describeNonJSON(contentType string, body []byte) string {
	trimmed := strings.TrimSpace(string(body))
	if trimmed == "" {
		return "empty response body"
	}
	var b strings.Builder
	b.WriteString("unexpected non-JSON response")
	mt := ""
	if contentType != "" {
		if t, _, err := mime.ParseMediaType(contentType); err == nil {
			mt = t
		} else {
			mt = "invalid Content-Type"
		}
		b.WriteString(" (" + cleanText(mt, 80) + ")")
	}
	var snippet string
	if sm := titleRe.FindStringSubmatch(trimmed); sm != nil {
		snippet = sm[1]
	} else if !strings.HasPrefix(trimmed, "<") {
		snippet = trimmed
	}
	if snippet = cleanText(snippet, 120); snippet != "" {
		b.WriteString(": " + snippet)
	}
	if mt == "text/html" || strings.HasPrefix(trimmed, "<") {
		b.WriteString(" (is the base URL a Rocket.Chat server, and is it up?)")
	}
	return b.String()
}

// cleanText makes s valid single-line UTF-8 of at most max runes (plus
// "…" when cut): whitespace and control characters collapse to one space.
func cleanText(s string, max int) string {
	if s == "" {
		return ""
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r)
	}), " ")
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max]) + "…"
	}
	return s
}

// rawString decodes a JSON string.
func rawString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// rawInt decodes a JSON integer that fits an int32 range.
func rawInt(raw json.RawMessage) (int, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil || f != float64(int64(f)) || f < -1<<31 || f > 1<<31-1 {
		return 0, false
	}
	return int(f), true
}
