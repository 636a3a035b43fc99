package rcemu

import (
	"crypto/rand"
	"math/big"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/bcrypt"
)

// Two-factor authentication of logins, as Rocket.Chat's 2FA hook runs it
// (only with Config.TwoFactor; without it the emulator behaves like
// TEST_MODE, where checkCodeForUser always passes):
//
//   - The onValidateLogin hook calls checkCodeForUser for every login but
//     resume (and proxy, cas) with the code of a {totp:{login, code}}
//     wrapper, password fallback off (RocketChat/Rocket.Chat
//     apps/meteor/app/2fa/server/loginHandler.ts
//     @77afb8ff7efe73c5d146a4de6bea58b2878e9820).
//   - checkCodeForUser picks the user's first enabled method in the order
//     totp, email; it calls the method's processInvalidCode, then answers
//     totp-required {method, …data, availableMethods} without a code, or
//     totp-invalid {method, …data} for a wrong one
//     (apps/meteor/app/2fa/server/code/index.ts
//     @f16baf07fafc8bdd26538b8969566885fd7aaf4a).
//   - TOTP: enabled by services.totp.enabled and the setting
//     Accounts_TwoFactorAuthentication_By_TOTP_Enabled; codes are RFC 6238
//     (SHA-1, 30 s, 6 digits, base32 secret) accepted within
//     Accounts_TwoFactorAuthentication_MaxDelta steps either side
//     (speakeasy verifyDelta; apps/meteor/app/2fa/server/code/TOTPCheck.ts
//     @f3fd3ade41a6beeb22942bfa0f5a07d34037047e, lib/totp.ts
//     @92705a561e0a4754b46af21579232ca2fc56f83f). Backup codes are not
//     emulated.
//   - E-mail: enabled by services.email2fa.enabled, a verified address and
//     Accounts_TwoFactorAuthentication_By_Email_Enabled. processInvalidCode
//     drops expired codes and, when none is left, generates a 6-digit code,
//     stores its bcrypt hash with an expiry of
//     Accounts_TwoFactorAuthentication_By_Email_Code_Expiration seconds and
//     mails it ("Authentication code", the code shown as 123-456) to every
//     verified address: {codeGenerated:true, emailOrUsername}; otherwise
//     {codeGenerated:false, emailOrUsername, codeCount, codeExpires}.
//     verify strips non-digits, and a matching code is used up
//     (apps/meteor/app/2fa/server/code/EmailCheck.ts
//     @77afb8ff7efe73c5d146a4de6bea58b2878e9820).
//
// The emulator keeps the mails in an inspectable mailbox (Mailbox,
// GET /_emu/mailbox) instead of sending them.

// emailCode is one element of services.emailCode.
type emailCode struct {
	hash   []byte // bcrypt of the 6 digits
	expire time.Time
}

// Mail is an e-mail Rocket.Chat would have sent (Mailer.send).
type Mail struct {
	To      string    `json:"to"`
	Subject string    `json:"subject"`
	Text    string    `json:"text"`
	At      time.Time `json:"at"`
}

// maxMails bounds the mailbox; older mails are dropped.
const maxMails = 1000

// Mailbox returns a copy of the mails sent so far, oldest first.
func (s *Server) Mailbox() []Mail {
	s.mailMu.Lock()
	defer s.mailMu.Unlock()
	return slices.Clone(s.mails)
}

// codeInMail finds the authentication code ("123-456") in a mail's text.
var codeInMail = regexp.MustCompile(`\b(\d{3})-(\d{3})\b`)

// LastEmailCode returns the digits of the newest authentication code mailed
// to address (compared case-insensitively), and whether there is one.
func (s *Server) LastEmailCode(address string) (string, bool) {
	mails := s.Mailbox()
	for i := len(mails) - 1; i >= 0; i-- {
		m := mails[i]
		if !strings.EqualFold(m.To, address) || m.Subject != "Authentication code" {
			continue
		}
		if sm := codeInMail.FindStringSubmatch(m.Text); sm != nil {
			return sm[1] + sm[2], true
		}
	}
	return "", false
}

func (s *Server) sendMail(m Mail) {
	s.mailMu.Lock()
	defer s.mailMu.Unlock()
	s.mails = append(s.mails, m)
	if over := len(s.mails) - maxMails; over > 0 {
		s.mails = slices.Delete(s.mails, 0, over)
	}
}

// handleMailbox is GET /_emu/mailbox[?to=address]: the mails, newest last.
func (s *Server) handleMailbox(w http.ResponseWriter, r *http.Request) {
	to := r.URL.Query().Get("to")
	out := []Mail{}
	for _, m := range s.Mailbox() {
		if to == "" || strings.EqualFold(m.To, to) {
			out = append(out, m)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"mails": out})
}

// TOTPCode is the RFC 6238 code of a base32 secret at t (SHA-1, 30 s,
// 6 digits), what an authenticator app shows. For tests.
func TOTPCode(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totpOpts(0))
}

func totpOpts(skew int) totp.ValidateOpts {
	return totp.ValidateOpts{Period: 30, Skew: uint(max(skew, 0)), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}
}

// NewTOTPSecret returns a random base32 TOTP secret (20 bytes, like
// speakeasy.generateSecret's default length).
func NewTOTPSecret() string {
	k, err := totp.Generate(totp.GenerateOpts{Issuer: "Rocket.Chat", AccountName: "rcemu", SecretSize: 20})
	if err != nil {
		panic("rcemu: generating a TOTP secret: " + err.Error())
	}
	return k.Secret()
}

// twoFactorMethods are the user's enabled methods in Rocket.Chat's order
// (checkMethods: totp, then email); s.mu must be held.
func (s *Server) twoFactorMethods(u *user) []string {
	var out []string
	if s.settingBool("Accounts_TwoFactorAuthentication_By_TOTP_Enabled") && u.totpSecret != "" {
		out = append(out, "totp")
	}
	if s.settingBool("Accounts_TwoFactorAuthentication_By_Email_Enabled") && u.email2fa && u.hasVerifiedEmail() {
		out = append(out, "email")
	}
	return out
}

// checkLoginCode is checkCodeForUser as the 2FA login hook calls it (no
// password fallback, no remember-me: there is no connection token yet);
// code is the {totp:{code}} of the login, "" when there is none. s.mu must
// be held.
func (s *Server) checkLoginCode(u *user, code string, now time.Time) *meteorError {
	if !s.cfg.TwoFactor || !s.settingBool("Accounts_TwoFactorAuthentication_Enabled") {
		return nil
	}
	methods := s.twoFactorMethods(u)
	if len(methods) == 0 {
		return nil
	}
	method := methods[0]
	data := s.processInvalidCode(u, method, now)
	if code == "" {
		details := map[string]any{"method": method, "availableMethods": methods}
		for k, v := range data {
			details[k] = v
		}
		return &meteorError{code: "totp-required", reason: "TOTP Required", details: details}
	}
	if !s.verifyCode(u, method, code, now) {
		details := map[string]any{"method": method}
		for k, v := range data {
			details[k] = v
		}
		return &meteorError{code: "totp-invalid", reason: "TOTP Invalid", details: details}
	}
	return nil
}

// processInvalidCode is the method's processInvalidCode; s.mu must be held.
func (s *Server) processInvalidCode(u *user, method string, now time.Time) map[string]any {
	if method != "email" {
		return map[string]any{"codeGenerated": false}
	}
	u.emailCodes = slices.DeleteFunc(u.emailCodes, func(c emailCode) bool { return c.expire.Before(now) })
	emailOrUsername := u.username
	if emailOrUsername == "" {
		if v := u.verifiedEmails(); len(v) > 0 {
			emailOrUsername = v[0]
		}
	}
	if len(u.emailCodes) > 0 {
		expires := make([]string, 0, len(u.emailCodes))
		for _, c := range u.emailCodes {
			expires = append(expires, isoTime(c.expire))
		}
		return map[string]any{"emailOrUsername": emailOrUsername, "codeGenerated": false,
			"codeCount": len(u.emailCodes), "codeExpires": expires}
	}
	s.sendEmailCode(u, now)
	return map[string]any{"codeGenerated": true, "emailOrUsername": emailOrUsername}
}

// verifyCode is the method's verify; s.mu must be held.
func (s *Server) verifyCode(u *user, method, code string, now time.Time) bool {
	switch method {
	case "totp":
		if u.totpSecret == "" {
			return false
		}
		ok, err := totp.ValidateCustom(code, u.totpSecret, now, totpOpts(s.settingInt("Accounts_TwoFactorAuthentication_MaxDelta", 1)))
		return err == nil && ok
	case "email":
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, code)
		u.emailCodes = slices.DeleteFunc(u.emailCodes, func(c emailCode) bool { return c.expire.Before(now) })
		for i, c := range u.emailCodes {
			if bcrypt.CompareHashAndPassword(c.hash, []byte(digits)) == nil {
				u.emailCodes = slices.Delete(u.emailCodes, i, i+1)
				return true
			}
		}
	}
	return false
}

// sendEmailCode is EmailCheck.sendEmailCode: a new code, stored hashed and
// mailed to every verified address; s.mu must be held.
func (s *Server) sendEmailCode(u *user, now time.Time) {
	var b strings.Builder
	for range 6 {
		n, err := rand.Int(rand.Reader, big.NewInt(10))
		if err != nil {
			panic("rcemu: crypto/rand: " + err.Error())
		}
		b.WriteByte(byte('0' + n.Int64()))
	}
	digits := b.String()
	hash, err := bcrypt.GenerateFromPassword([]byte(digits), s.cfg.BcryptCost)
	if err != nil {
		panic("rcemu: bcrypt: " + err.Error())
	}
	secs := s.settingInt("Accounts_TwoFactorAuthentication_By_Email_Code_Expiration", 3600)
	u.emailCodes = append(u.emailCodes, emailCode{hash: hash, expire: now.Add(time.Duration(secs) * time.Second)})
	shown := digits[:3] + "-" + digits[3:]
	for _, addr := range u.verifiedEmails() {
		s.sendMail(Mail{To: addr, Subject: "Authentication code", At: now,
			Text: "\nHere is your authentication code:\n\n" + shown + "\n\nDo not provide this code to anyone.\n" +
				"If you didn't try to login in your account please ignore this email.\n"})
	}
}

// handleSendEmailCode is POST /api/v1/users.2fa.sendEmailCode
// {emailOrUsername} (no authentication; rate limited like every route):
// the user is looked up by e-mail address (when the value holds '@') or
// username and sent a new code; an unknown user gets the same
// {success:true}; a missing value is 400 error-parameter-required
// (RocketChat/Rocket.Chat apps/meteor/app/api/server/v1/users.ts
// @7bf6c349d9e7d542db0f1ce137c9427b9f4e771d; authentication.yaml
// /api/v1/users.2fa.sendEmailCode). Rocket.Chat sends the code whether or
// not e-mail 2FA is on for the user.
func (s *Server) handleSendEmailCode(c *call) reply {
	v, _ := c.body["emailOrUsername"].(string)
	if v == "" {
		return meteorFailure("error-parameter-required", "emailOrUsername is required", nil)
	}
	field := "username"
	if strings.Contains(v, "@") {
		field = "email"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.users[c.userID]
	if u == nil {
		u = s.st.findForLogin(field, v)
	}
	if u != nil {
		s.sendEmailCode(u, c.now)
	}
	return success(nil)
}

func (u *user) verifiedEmails() []string {
	var out []string
	for _, e := range u.emails {
		if e.Verified {
			out = append(out, e.Address)
		}
	}
	return out
}

// EnableTOTP turns on TOTP 2FA for a user (services.totp {enabled, secret})
// with a new secret, which it returns (what the user scans into an
// authenticator app).
func (s *Server) EnableTOTP(userID string) (string, error) {
	secret := NewTOTPSecret()
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.users[userID]
	if u == nil {
		return "", ErrNoUser
	}
	u.totpSecret = secret
	return secret, nil
}

// SetEmail2FA turns e-mail 2FA (services.email2fa.enabled) on or off for
// a user; it applies to users with a verified address.
func (s *Server) SetEmail2FA(userID string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.users[userID]
	if u == nil {
		return ErrNoUser
	}
	u.email2fa = on
	return nil
}
