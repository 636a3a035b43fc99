package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rocketchat"
)

// Native login (config website.native_login): the IFrame URL also offers
// "Log in with a Rocket.Chat account", a login with the person's own
// Rocket.Chat password and 2FA code, for admins and guests who have no
// website account while iframe login is on (Rocket.Chat issues #18232,
// #14141). It is a pure Rocket.Chat login: the resume token is the
// person's own Rocket.Chat session, handed to the chat like any other
// (handoff.html) and never cached by the broker, linked to a website
// subject, or given a website session.
//
// The password is never kept, not even between the two steps: when
// Rocket.Chat answers totp-required, the second step asks for the password
// again together with the code (browsers' password managers fill it in).
// rcsso holds no state between the steps — nothing to seal, expire, share
// between instances or leak; the page after the first step carries neither
// the password nor anything derived from it; and Rocket.Chat's own 2FA
// login takes the password with the code anyway ({totp:{login, code}}).
//
// Limits: the failed-login limiter of the local form (per client, per
// Rocket.Chat user name and client, per-user slow-down), counting wrong
// passwords and wrong codes; at most nativeConcurrency calls to Rocket.Chat
// at once; and Rocket.Chat's own: its login method allows 5 calls per 10 s
// per connection, and every native login comes from rcsso's address, so
// all of them share that allowance (NativeRateLimited, with Retry-After).
// Failed logins also count towards Rocket.Chat's
// Block_Multiple_Failed_Logins_By_Ip for rcsso's address.

// nativeConcurrency bounds the native logins waiting on Rocket.Chat at
// once; more wait up to loginHashWait, then get 429.
const nativeConcurrency = 4

// Bounds of the native login form's fields (bytes).
const (
	maxNativeUsername = 256 // Rocket.Chat user names and e-mail addresses
	maxNativePassword = 1024
	maxNativeCode     = 32 // 6-digit TOTP or e-mail codes ("123-456"), 8-character backup codes
)

// NativeLoginError is a Rocket.Chat login refused on the native login form;
// classify maps each Reason to the status and message the form shows.
type NativeLoginError struct {
	// Reason is one of the Native* reasons.
	Reason string
	// RetryAfter is when to try again (NativeRateLimited, NativeBlocked).
	RetryAfter time.Duration
	// Err is Rocket.Chat's answer (a *rocketchat.Error), or nil.
	Err error
}

// Reasons of a NativeLoginError (also logged as "reason").
const (
	NativeBadCredentials = "wrong user name or password"
	NativeCodeInvalid    = "wrong, expired or used two-factor code"
	NativeDeactivated    = "Rocket.Chat user deactivated"
	NativeBlocked        = "Rocket.Chat blocked logins after failed attempts"
	NativeRateLimited    = "Rocket.Chat rate limit"
	NativeUndisclosed    = "Rocket.Chat refused without saying why"
	NativeMalformed      = "malformed form field"
	NativeTopLevel       = "not inside the chat"
)

func (e *NativeLoginError) Error() string {
	if e.Err != nil {
		return "native login refused: " + e.Reason + ": " + e.Err.Error()
	}
	return "native login refused: " + e.Reason
}

func (e *NativeLoginError) Unwrap() error { return e.Err }

// nativeView is the native login part of a page.
type nativeView struct {
	// Username prefills the user name.
	Username string
	// CodeStep asks for the 2FA code with the password.
	CodeStep bool
	// Method is the 2FA method: "totp", "email", or "" (unknown: the
	// code field is optional).
	Method string
	// Notice is shown as a status line (a code was e-mailed).
	Notice string
	// Client is the Rocket.Chat client kind (see clientOf).
	Client string
}

// nativeSection is the collapsed "Log in with a Rocket.Chat account" part
// of the IFrame URL, nil when website.native_login is off.
func (s *Server) nativeSection(client string) *nativeView {
	if !s.o.NativeLogin {
		return nil
	}
	return &nativeView{Client: client}
}

// nativeLoginSubmit is POST /login/rocketchat (only with
// website.native_login; CSRF-protected by http.CrossOriginProtection). The
// form carries username, password, and in the second step code; the
// button "resend" asks Rocket.Chat to e-mail a new code, after checking
// the password again. Success renders the hand-over page with the
// person's own resume token; refusals render the form again with their
// message (classify) and status.
func (s *Server) nativeLoginSubmit(w http.ResponseWriter, r *http.Request) error {
	// A form submission is a navigation; a script's fetch is not.
	if m := r.Header.Get("Sec-Fetch-Mode"); m != "" && m != "navigate" && m != "nested-navigate" {
		return errNativeNotNavigation
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		return &Error{Status: http.StatusBadRequest, Message: "malformed login form", Err: err}
	}
	f := r.PostForm
	username := strings.TrimSpace(f.Get("username"))
	password := f.Get("password")
	code := strings.Join(strings.Fields(f.Get("code")), "")
	method := f.Get("method")
	if method != "totp" && method != "email" {
		method = ""
	}
	resend := f.Get("resend") != ""
	client := clientOf(r, f.Get("client"))
	view := &nativeView{Username: username, Client: client, CodeStep: f.Has("code") || resend, Method: method}
	ip := clientIP(r)
	user := strings.ToLower(username)
	render := func(err error) error {
		status, msg, retry := classify(err)
		if status == statusClientClosed {
			return err
		}
		if retry > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(retry))
		}
		if !validField(username, maxNativeUsername) {
			view.Username = ""
		}
		s.render(w, r, status, "nativelogin.html", page{Title: "Rocket.Chat login", Error: msg, RequestID: requestID(r.Context()),
			Native: view, Data: handoffData{RCOrigin: s.o.RocketChatOrigin, Native: true}})
		return nil
	}
	switch {
	case !validField(username, maxNativeUsername), password == "" && !resend, len(password) > maxNativePassword,
		len(code) > maxNativeCode, !validCode(code):
		s.log.Info("native login refused", "reason", NativeMalformed, "client_ip", ip, "request_id", requestID(r.Context()))
		return render(&NativeLoginError{Reason: NativeMalformed})
	case resend && password == "":
		return render(&NativeLoginError{Reason: NativeMalformed})
	case r.Header.Get("Sec-Fetch-Dest") == "document":
		// A tab of its own: there is no chat to hand the token to.
		return render(&NativeLoginError{Reason: NativeTopLevel})
	}
	if resend {
		code = ""
	}

	attempt, err := s.limiter.Reserve(limiterClient(ip), "rocketchat\x00"+user)
	if err != nil {
		s.log.Warn("native login refused", "reason", reasonOf(err), "user", user, "client_ip", ip)
		audit.Record(r.Context(), audit.Event{Event: audit.LoginFailed, Outcome: audit.Denied, Username: user, Reason: "native login: login limits: " + reasonOf(err)})
		return render(err)
	}
	ctx := r.Context()
	if attempt.Wait > 0 {
		t := time.NewTimer(attempt.Wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			attempt.Cancel()
			return nil
		}
	}
	release, err := s.nativeSlot(ctx)
	if err != nil {
		attempt.Cancel()
		if ctx.Err() != nil {
			return nil
		}
		return render(err)
	}
	res, err := func() (rocketchat.LoginResult, error) {
		defer release()
		return s.o.RC.LoginPerson(ctx, username, password, code)
	}()
	if err == nil {
		// (After "resend" too: the person has no 2FA any more, and the
		// password was right.)
		attempt.Succeeded()
		s.log.Info("native Rocket.Chat login", "rc_user_id", res.UserID, "user", user, "client_ip", ip, "request_id", requestID(ctx))
		audit.Record(ctx, audit.Event{Event: audit.NativeLogin, RCUserID: res.UserID, Username: user,
			Reason: "the person's own Rocket.Chat password; session handed to the chat, nothing kept"})
		s.render(w, r, http.StatusOK, "handoff.html", page{
			Username: username,
			Data:     handoffData{RCOrigin: s.o.RocketChatOrigin, LoginToken: res.AuthToken, TokenKey: "loginToken", Client: client},
		})
		return nil
	}
	if tf, ok := rocketchat.IsTwoFactorRequired(err); ok {
		attempt.Cancel() // the password was right: not a failure, not a success either
		view.CodeStep, view.Method = true, twoFactorMethod(tf.Method)
		view.Notice = codeNotice(view.Method, tf.CodeGenerated)
		if resend && view.Method == "email" && tf.EmailOrUsername != "" {
			// Rocket.Chat e-mails a code by itself only when it holds no
			// valid one (codeGenerated); otherwise ask it for another.
			if !tf.CodeGenerated {
				if serr := s.o.RC.SendEmailCode(ctx, tf.EmailOrUsername); serr != nil {
					s.log.Warn("native login: could not ask Rocket.Chat to e-mail a new code", "user", user, "err", serr)
					return render(nativeRefusal(serr))
				}
			}
			view.Notice = "Rocket.Chat has e-mailed you a new code. Enter it together with your password."
		}
		s.log.Info("native login: two-factor code asked", "method", view.Method, "user", user, "client_ip", ip)
		s.render(w, r, http.StatusOK, "nativelogin.html", page{Title: "Rocket.Chat login", Native: view,
			Data: handoffData{RCOrigin: s.o.RocketChatOrigin, Native: true}})
		return nil
	}
	ne := nativeRefusal(err)
	var nle *NativeLoginError
	if errors.As(ne, &nle) {
		switch nle.Reason {
		case NativeBadCredentials, NativeCodeInvalid, NativeUndisclosed:
			attempt.Failed()
		default:
			attempt.Cancel()
		}
		if nle.Reason == NativeCodeInvalid {
			view.CodeStep = true
			if tf, _ := rocketchat.IsTwoFactorInvalid(err); tf != nil && tf.Method != "" {
				view.Method = twoFactorMethod(tf.Method)
			}
		}
		if nle.Reason == NativeUndisclosed {
			view.CodeStep, view.Method = true, ""
		}
		s.log.Info("native login refused", "reason", nle.Reason, "user", user, "client_ip", ip, "request_id", requestID(ctx))
		audit.Record(ctx, audit.Event{Event: audit.LoginFailed, Outcome: audit.Denied, Username: user, Reason: "native login: " + nle.Reason})
		return render(ne)
	}
	attempt.Cancel()
	if ctx.Err() != nil {
		return nil
	}
	s.log.Error("native login: Rocket.Chat failed", "user", user, "client_ip", ip, "request_id", requestID(ctx), "err", err)
	audit.Record(ctx, audit.Event{Event: audit.LoginFailed, Outcome: audit.Failed, Username: user, Reason: "native login: " + mint.FailureReason(err)})
	return render(err)
}

// errNativeNotNavigation is the Fetch Metadata refusal of a scripted POST
// to the native login form.
var errNativeNotNavigation = &Error{Status: http.StatusForbidden,
	Message: "the Rocket.Chat login form takes form submissions only (Sec-Fetch-Mode is not navigate)"}

// nativeRefusal turns Rocket.Chat's refusals of a person's login into a
// *NativeLoginError; other errors are returned as they are.
func nativeRefusal(err error) error {
	if d, ok := rocketchat.IsRateLimited(err); ok {
		return &NativeLoginError{Reason: NativeRateLimited, RetryAfter: max(d, time.Second), Err: err}
	}
	switch {
	case rocketchat.IsBadCredentials(err):
		return &NativeLoginError{Reason: NativeBadCredentials, Err: err}
	case rocketchat.IsUserDeactivated(err):
		return &NativeLoginError{Reason: NativeDeactivated, Err: err}
	case rocketchat.IsLoginBlocked(err):
		return &NativeLoginError{Reason: NativeBlocked, RetryAfter: 5 * time.Minute, Err: err}
	case rocketchat.IsUndisclosedLoginRefusal(err):
		return &NativeLoginError{Reason: NativeUndisclosed, Err: err}
	}
	if _, ok := rocketchat.IsTwoFactorInvalid(err); ok {
		return &NativeLoginError{Reason: NativeCodeInvalid, Err: err}
	}
	return err
}

// reasonOf is the log reason of a limiter refusal.
func reasonOf(err error) string {
	var le *LoginRefusedError
	if errors.As(err, &le) {
		return le.Reason
	}
	return err.Error()
}

// nativeSlot takes one of the nativeConcurrency slots, waiting at most
// loginHashWait; release gives it back. Errors: a *LoginRefusedError
// (RefusedBusy) or ctx's error.
func (s *Server) nativeSlot(ctx context.Context) (release func(), err error) {
	release = func() { <-s.nativeSlots }
	select {
	case s.nativeSlots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(loginHashWait)
	defer t.Stop()
	select {
	case s.nativeSlots <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, &LoginRefusedError{Reason: RefusedBusy, RetryAfter: loginHashWait}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// twoFactorMethod keeps the methods the form knows how to label.
func twoFactorMethod(m string) string {
	if m == "totp" || m == "email" {
		return m
	}
	return ""
}

// codeNotice is the second step's instruction for method.
func codeNotice(method string, generated bool) string {
	switch {
	case method == "totp":
		return "Your account uses two-factor authentication. Enter the code from your authenticator app, together with your password."
	case method == "email" && generated:
		return "Rocket.Chat has e-mailed you a code. Enter it together with your password."
	case method == "email":
		return "Enter the code Rocket.Chat e-mailed you, together with your password. No e-mail? Ask for a new code."
	}
	return "Your account uses two-factor authentication. Enter your code together with your password."
}

// validField reports whether v is a non-empty form value of at most n
// bytes of valid UTF-8 without control characters.
func validField(v string, n int) bool {
	if v == "" || len(v) > n || !utf8.ValidString(v) {
		return false
	}
	return strings.IndexFunc(v, unicode.IsControl) < 0
}

// validCode reports whether a 2FA code (spaces removed) holds only letters,
// digits and dashes: TOTP and e-mail codes are digits ("123-456" as
// e-mailed), backup codes letters and digits.
func validCode(code string) bool {
	for _, r := range code {
		if !(r == '-' || r < utf8.RuneSelf && (unicode.IsDigit(r) || unicode.IsLetter(r))) {
			return false
		}
	}
	return true
}

// nativeMessage is the form message of a NativeLoginError (classify).
func nativeMessage(e *NativeLoginError) (int, string, int) {
	retry := int((e.RetryAfter + time.Second - 1) / time.Second)
	switch e.Reason {
	case NativeBadCredentials:
		return http.StatusForbidden, "Wrong Rocket.Chat user name or password.", 0
	case NativeCodeInvalid:
		return http.StatusForbidden, "That code is wrong, expired or already used. Enter the current code, together with your password.", 0
	case NativeDeactivated:
		return http.StatusForbidden, "This Rocket.Chat account is deactivated; ask the site administrator.", 0
	case NativeBlocked:
		return http.StatusTooManyRequests, "Rocket.Chat is blocking logins for a while after too many failed attempts. Try again in a few minutes.", max(retry, 1)
	case NativeRateLimited:
		return http.StatusTooManyRequests, fmt.Sprintf("Too many people are logging in to Rocket.Chat right now. Try again in %d seconds.", max(retry, 1)), max(retry, 1)
	case NativeUndisclosed:
		return http.StatusForbidden, "Rocket.Chat did not accept this login. Check your user name and password; if your account uses two-factor authentication, enter its code as well.", 0
	case NativeTopLevel:
		return http.StatusBadRequest, "This login hands your session to the chat: open the chat and log in there.", 0
	}
	return http.StatusBadRequest, "Enter your Rocket.Chat user name or e-mail address and your password (no control characters; codes are letters, digits and dashes).", 0
}
