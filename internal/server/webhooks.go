package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/mint"
)

// Signed webhooks let the website's back end tell rcsso that a person
// logged out (POST /webhooks/logout) or left (POST /webhooks/deprovision).
//
// Signature: X-Rcsso-Timestamp is the Unix time in seconds; X-Rcsso-Signature
// is "v1=" + hex(HMAC-SHA256(secret, timestamp + "." + body)); several
// comma-separated signatures are accepted (secret rotation). A timestamp
// more than 5 minutes away from rcsso's clock, or a signature already seen,
// is refused (403, 409): a captured request cannot be replayed. What is
// remembered is the MAC itself (the decoded bytes, so the same signature in
// upper case is the same signature), in the store: it survives a restart and
// is shared by every rcsso instance on that store. /embed/codes is signed
// the same way but valid for 60 s and not one-shot (see embedCodes).
//
// Body: {"subject": "local:alice"} or {"source": "jwt", "id": "u-1001"};
// deprovision adds "action": "deactivate" or "delete" (required); each
// endpoint refuses fields that are not its own (webhookEndpoint).

// Deprovisioner deactivates or deletes a person's Rocket.Chat user.
type Deprovisioner interface {
	Deprovision(ctx context.Context, subject string, deleteUser bool) (rcUserID string, err error)
}

// webhookWindow bounds clock skew and the replay memory.
const webhookWindow = 5 * time.Minute

type webhookBody struct {
	Subject string `json:"subject"`
	Source  string `json:"source"`
	ID      string `json:"id"`
	Action  string `json:"action"`
	// For /embed/codes: the host page's origin and the person's profile.
	Origin        string `json:"origin"`
	Username      string `json:"username"`
	Name          string `json:"name"`
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
}

// webhookEndpoint is what one signed endpoint accepts. The signature
// covers the timestamp and the body, not the path, so the body shapes are
// disjoint: a body signed for one endpoint is malformed at every other (a
// captured logout webhook or /embed/codes call cannot deprovision anyone).
type webhookEndpoint struct {
	// window bounds the distance between X-Rcsso-Timestamp and rcsso's
	// clock.
	window time.Duration
	// once refuses a MAC already seen (webhooks are one-shot
	// notifications); /embed/codes is not once, since a back end may
	// rightly ask twice in one second for the same person (two tabs), and
	// each answer is a fresh single-use code bound to an allowed origin.
	once bool
	// fields are the body's allowed keys; required must be present.
	fields, required []string
}

var (
	logoutEndpoint      = webhookEndpoint{window: webhookWindow, once: true, fields: []string{"subject", "source", "id"}}
	deprovisionEndpoint = webhookEndpoint{window: webhookWindow, once: true, fields: []string{"subject", "source", "id", "action"}, required: []string{"action"}}
	codesEndpoint       = webhookEndpoint{window: codesWindow, fields: []string{"subject", "source", "id", "origin", "username", "name", "email", "email_verified"}, required: []string{"origin"}}
)

// verifyWebhook checks the signature and the body's shape for endpoint ep
// and returns the parsed body. Nothing is remembered for a request that is
// refused.
func (s *Server) verifyWebhook(w http.ResponseWriter, r *http.Request, ep webhookEndpoint) (webhookBody, error) {
	window, once := ep.window, ep.once
	if len(s.o.WebhookSecret) == 0 {
		return webhookBody{}, &Error{Status: http.StatusNotFound, Message: "webhooks are off: set webhooks.secret"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<10))
	if err != nil {
		return webhookBody{}, &Error{Status: http.StatusBadRequest, Message: "body too large or unreadable", Err: err}
	}
	ts := r.Header.Get("X-Rcsso-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return webhookBody{}, &Error{Status: http.StatusForbidden, Message: "missing or malformed X-Rcsso-Timestamp"}
	}
	now := time.Now()
	if d := now.Sub(time.Unix(sec, 0)); d > window || d < -window {
		return webhookBody{}, &Error{Status: http.StatusForbidden, Message: fmt.Sprintf("X-Rcsso-Timestamp is more than %s off: send the current time, and check the clocks", window)}
	}
	mac := hmac.New(sha256.New, s.o.WebhookSecret)
	mac.Write([]byte(ts))
	mac.Write([]byte("."))
	mac.Write(body)
	want := mac.Sum(nil)
	matched := false
	for part := range strings.SplitSeq(r.Header.Get("X-Rcsso-Signature"), ",") {
		v, ok := strings.CutPrefix(strings.TrimSpace(part), "v1=")
		if !ok {
			continue
		}
		got, err := hex.DecodeString(v)
		if err == nil && hmac.Equal(got, want) {
			matched = true
			break
		}
	}
	if !matched {
		return webhookBody{}, &Error{Status: http.StatusForbidden, Message: "bad X-Rcsso-Signature"}
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(body, &keys); err != nil {
		return webhookBody{}, &Error{Status: http.StatusBadRequest, Message: "body is not the expected JSON object", Err: err}
	}
	for k := range keys {
		if !slices.Contains(ep.fields, k) {
			return webhookBody{}, &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("%q is not a field of this endpoint (it takes %s)", k, strings.Join(ep.fields, ", "))}
		}
	}
	for _, k := range ep.required {
		if _, ok := keys[k]; !ok {
			return webhookBody{}, &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("%q is required", k)}
		}
	}
	var b webhookBody
	if err := json.Unmarshal(body, &b); err != nil {
		return webhookBody{}, &Error{Status: http.StatusBadRequest, Message: "body is not the expected JSON object", Err: err}
	}
	if b.Subject == "" && b.Source != "" && b.ID != "" {
		b.Subject = b.Source + ":" + b.ID
	}
	if b.Subject == "" || len(b.Subject) > 300 {
		return webhookBody{}, &Error{Status: http.StatusBadRequest, Message: `give "subject" ("<source>:<id>") or "source" and "id"`}
	}
	if once {
		// The key is the MAC rcsso computed, not the text sent: every
		// spelling of one signature is one key. It is kept past the
		// window, so the timestamp check refuses the request by then.
		first, err := s.o.Store.UseOnce(r.Context(), "webhook-mac:"+hex.EncodeToString(want), now.Add(2*window))
		if err != nil {
			return webhookBody{}, err
		}
		if !first {
			return webhookBody{}, &Error{Status: http.StatusConflict, Message: "this webhook was already delivered (replay refused)"}
		}
	}
	return b, nil
}

// logoutWebhook ends every rcsso session of the person and their
// Rocket.Chat session.
func (s *Server) logoutWebhook(w http.ResponseWriter, r *http.Request) error {
	b, err := s.verifyWebhook(w, r, logoutEndpoint)
	if err != nil {
		return err
	}
	n, err := s.o.Sessions.EndSubject(r.Context(), b.Subject)
	if err != nil {
		return err
	}
	audit.Record(r.Context(), audit.Event{Event: audit.Logout, Subject: b.Subject, Reason: "logout webhook"})
	had, err := s.o.Broker.Forget(r.Context(), b.Subject, true)
	if err != nil {
		return err
	}
	s.log.Info("logout webhook", "subject", b.Subject, "sessions_ended", n, "chat_session_ended", had)
	writeJSON(w, http.StatusOK, map[string]any{"subject": b.Subject, "sessions_ended": n, "chat_session_ended": had})
	return nil
}

// deprovisionWebhook deactivates or deletes the person's Rocket.Chat user
// and ends their sessions.
func (s *Server) deprovisionWebhook(w http.ResponseWriter, r *http.Request) error {
	b, err := s.verifyWebhook(w, r, deprovisionEndpoint)
	if err != nil {
		return err
	}
	del := false
	switch b.Action {
	case "deactivate":
	case "delete":
		del = true
	default:
		return &Error{Status: http.StatusBadRequest, Message: `"action" must be "deactivate" or "delete"`}
	}
	if s.o.Deprovisioner == nil {
		return &Error{Status: http.StatusNotImplemented, Message: "deprovisioning needs Rocket.Chat admin credentials (rocketchat.admin_*)"}
	}
	uid, err := s.o.Deprovisioner.Deprovision(r.Context(), b.Subject, del)
	if err != nil {
		if s.o.UnknownSubject != nil && errors.Is(err, s.o.UnknownSubject) {
			audit.Record(r.Context(), audit.Event{Event: audit.Deprovision, Outcome: audit.Failed, Subject: b.Subject,
				Reason: "deprovision webhook: no Rocket.Chat user is linked to this subject"})
			return &Error{Status: http.StatusNotFound, Message: "no Rocket.Chat user is linked to this subject"}
		}
		audit.Record(r.Context(), audit.Event{Event: audit.Deprovision, Outcome: audit.Failed, Subject: b.Subject,
			Reason: "deprovision webhook: " + mint.FailureReason(err)})
		return err
	}
	if _, err := s.o.Sessions.EndSubject(r.Context(), b.Subject); err != nil {
		return err
	}
	if _, err := s.o.Broker.Forget(r.Context(), b.Subject, false); err != nil {
		return err
	}
	action := "deactivated"
	if del {
		action = "deleted"
	}
	audit.Record(r.Context(), audit.Event{Event: audit.Deprovision, Subject: b.Subject, RCUserID: uid, Reason: "deprovision webhook: user " + action})
	writeJSON(w, http.StatusOK, map[string]string{"subject": b.Subject, "rocketchat_user_id": uid, "action": action})
	return nil
}
