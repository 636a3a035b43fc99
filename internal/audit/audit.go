// Package audit records who was given a chat session, and every other
// decision about a person's chat account, as one JSON line per event
// (configuration key audit.path: a file, standard output when it is "-" or
// empty, nothing when it is "off"). Tokens and passwords are never
// recorded.
//
// Fields of every line (docs/audit.md describes them for operators):
//
//	time        RFC 3339 with milliseconds, UTC
//	event       provision | mint | revalidate | revoke | logout | deprovision |
//	            refused | login_failed | native_login | admin
//	outcome     ok | refused | failed (with reason)
//	subject     the website subject ("<source>:<id>"), when known
//	source      the identity source that recognised the person
//	rc_user_id  the Rocket.Chat user, when known
//	rc_username the Rocket.Chat username (provision)
//	username    what was typed as the user name (login_failed)
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
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
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
	// NativeLogin: a person logged in to the chat with their own
	// Rocket.Chat password on the IFrame URL (website.native_login).
	NativeLogin = "native_login"
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
	Time     time.Time `json:"time"`
	Event    string    `json:"event"`
	Outcome  string    `json:"outcome"`
	Subject  string    `json:"subject,omitempty"`
	Source   string    `json:"source,omitempty"`
	RCUserID string    `json:"rc_user_id,omitempty"`
	// RCUsername is the Rocket.Chat username (provision events).
	RCUsername string `json:"rc_username,omitempty"`
	// Username is the user name typed on a login form (login_failed),
	// at most 128 bytes; it is not a subject.
	Username  string `json:"username,omitempty"`
	ClientIP  string `json:"client_ip,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Actor     string `json:"actor,omitempty"`
}

// Recorder writes events. The zero value and a nil *Recorder discard them.
type Recorder struct {
	mu   sync.Mutex
	w    io.Writer
	f    *os.File // the file at path, when writing to one
	path string
	now  func() time.Time
}

// Open returns a Recorder appending JSON lines to the file at path
// (created 0600), writing them to stdout when path is "-" or empty, or
// discarding them when path is "off". Errors name the key audit.path.
func Open(path string, stdout io.Writer) (*Recorder, error) {
	switch path {
	case "off":
		return &Recorder{}, nil
	case "", "-":
		return &Recorder{w: stdout, now: time.Now}, nil
	}
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	return &Recorder{w: f, f: f, path: path, now: time.Now}, nil
}

func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf(`audit.path: cannot open %s for appending (%v); give a file in a directory rcsso may write, "-" for standard output, or "off"`, path, err)
	}
	return f, nil
}

// Reopen closes and reopens the file (after logrotate moved it away); a
// Recorder not writing to a file does nothing. On error the old file is
// kept.
func (r *Recorder) Reopen() error {
	if r == nil || r.f == nil {
		return nil
	}
	f, err := openFile(r.path)
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.f
	r.f, r.w = f, f
	r.mu.Unlock()
	return old.Close()
}

// Enabled reports whether r writes events anywhere.
func (r *Recorder) Enabled() bool { return r != nil && r.now != nil }

// New returns a Recorder writing to w (tests).
func New(w io.Writer) *Recorder { return &Recorder{w: w, now: time.Now} }

// Close closes the file.
func (r *Recorder) Close() error {
	if r == nil || r.f == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}

// Record writes e, filling Time and the request metadata from ctx. Write
// errors are dropped: the audit log never fails a login.
func (r *Recorder) Record(ctx context.Context, e Event) {
	if r == nil || r.now == nil {
		return // discarding
	}
	if e.Time.IsZero() {
		e.Time = r.now().UTC()
	}
	e.Time = e.Time.Truncate(time.Millisecond)
	if m, ok := ctx.Value(metaKey{}).(*meta); ok {
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
	if len(e.Username) > 128 {
		e.Username = strings.ToValidUTF8(e.Username[:128], "")
	}
	line, err := json.Marshal(e)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = r.w.Write(append(line, '\n'))
}

type metaKey struct{}

// meta is what a context carries: the Recorder and, for an HTTP request,
// its id and client IP (one context value, allocated once per request).
type meta struct {
	rec                 *Recorder
	requestID, clientIP string
}

// With returns ctx carrying r (rcsso's own commands).
func With(ctx context.Context, r *Recorder) context.Context {
	return context.WithValue(ctx, metaKey{}, &meta{rec: r})
}

// WithRequest returns ctx carrying r and a request's id and client IP; the
// HTTP layer sets it once per request, and Request reads it back.
func WithRequest(ctx context.Context, r *Recorder, requestID, clientIP string) context.Context {
	return context.WithValue(ctx, metaKey{}, &meta{rec: r, requestID: requestID, clientIP: clientIP})
}

// Request returns the request id and client IP WithRequest put in ctx
// (empty outside a request).
func Request(ctx context.Context) (requestID, clientIP string) {
	if m, ok := ctx.Value(metaKey{}).(*meta); ok {
		return m.requestID, m.clientIP
	}
	return "", ""
}

// Record writes e with the Recorder carried by ctx (none: discarded).
func Record(ctx context.Context, e Event) {
	if m, ok := ctx.Value(metaKey{}).(*meta); ok {
		m.rec.Record(ctx, e)
	}
}

// Provisioned records that id's Rocket.Chat user was created (created) or
// an existing one linked to it (why says which rule allowed it).
func Provisioned(ctx context.Context, subject, source, rcUserID, rcUsername string, created bool, why string) {
	reason := "created a Rocket.Chat user"
	if !created {
		reason = "linked an existing Rocket.Chat user: " + why
	}
	Record(ctx, Event{Event: Provision, Subject: subject, Source: source, RCUserID: rcUserID, RCUsername: rcUsername, Reason: reason})
}
