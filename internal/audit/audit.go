// Package audit records who was given a chat session, and every other
// decision about a person's chat account, as one JSON line per event
// (configuration key audit.path; standard output when it is "-" or empty
// while audit.enabled is true). Tokens and passwords are never recorded.
//
// Fields of every line (docs/audit.md describes them for operators):
//
//	time        RFC 3339 with milliseconds, UTC
//	event       provision | mint | revalidate | revoke | logout | deprovision |
//	            refused | login_failed | admin
//	outcome     ok | refused | failed (with reason)
//	subject     the website subject ("<source>:<id>"), when known
//	source      the identity source that recognised the person
//	rc_user_id  the Rocket.Chat user, when known
//	client_ip   the TCP peer of the request (rcsso's own commands: empty)
//	request_id  the id rcsso logs and shows on error pages
//	reason      why (a short phrase: "chat-side logout", "access policy", …)
//	actor       for admin events: the command ("people reset", "setup --apply")
//
// Events are written by a Recorder carried in the context (With), so that
// request metadata set by the HTTP layer (WithRequest) reaches the broker and
// the provisioner without threading it through every call.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Event names.
const (
	Provision   = "provision"
	Mint        = "mint"
	Revalidate  = "revalidate"
	Revoke      = "revoke"
	Logout      = "logout"
	Deprovision = "deprovision"
	Refused     = "refused"
	LoginFailed = "login_failed"
	Admin       = "admin"
)

// Outcomes.
const (
	OK     = "ok"
	Denied = "refused"
	Failed = "failed"
)

// Event is one audit record. Empty fields are left out of the line.
type Event struct {
	Time      time.Time `json:"time"`
	Event     string    `json:"event"`
	Outcome   string    `json:"outcome"`
	Subject   string    `json:"subject,omitempty"`
	Source    string    `json:"source,omitempty"`
	RCUserID  string    `json:"rc_user_id,omitempty"`
	ClientIP  string    `json:"client_ip,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Actor     string    `json:"actor,omitempty"`
}

// Recorder writes events. The zero value and a nil *Recorder discard them.
type Recorder struct {
	mu  sync.Mutex
	w   io.Writer
	c   io.Closer
	now func() time.Time
}

// Open returns a Recorder appending JSON lines to path (created 0600), or
// writing them to standard output when path is "-". An empty path gives a
// Recorder that discards.
func Open(path string) (*Recorder, error) {
	switch path {
	case "":
		return &Recorder{}, nil
	case "-":
		return &Recorder{w: os.Stdout, now: time.Now}, nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit.path: %w", err)
	}
	return &Recorder{w: f, c: f, now: time.Now}, nil
}

// New returns a Recorder writing to w (tests).
func New(w io.Writer) *Recorder { return &Recorder{w: w, now: time.Now} }

// Close closes the file.
func (r *Recorder) Close() error {
	if r == nil || r.c == nil {
		return nil
	}
	return r.c.Close()
}

// Record writes e, filling Time and the request metadata from ctx. Write
// errors are dropped: the audit log never fails a login.
func (r *Recorder) Record(ctx context.Context, e Event) {
	if r == nil || r.w == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = r.now().UTC()
	}
	e.Time = e.Time.Truncate(time.Millisecond)
	if m, ok := ctx.Value(requestKey{}).(requestMeta); ok {
		if e.ClientIP == "" {
			e.ClientIP = m.clientIP
		}
		if e.RequestID == "" {
			e.RequestID = m.requestID
		}
	}
	if e.Outcome == "" {
		e.Outcome = OK
	}
	line, err := json.Marshal(e)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = r.w.Write(append(line, '\n'))
}

type recorderKey struct{}
type requestKey struct{}

type requestMeta struct{ requestID, clientIP string }

// With returns ctx carrying r.
func With(ctx context.Context, r *Recorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, r)
}

// WithRequest returns ctx carrying a request's id and client IP.
func WithRequest(ctx context.Context, requestID, clientIP string) context.Context {
	return context.WithValue(ctx, requestKey{}, requestMeta{requestID: requestID, clientIP: clientIP})
}

// Record writes e with the Recorder carried by ctx (none: discarded).
func Record(ctx context.Context, e Event) {
	r, _ := ctx.Value(recorderKey{}).(*Recorder)
	r.Record(ctx, e)
}
