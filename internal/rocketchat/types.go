package rocketchat

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Credentials authenticate a REST call: the X-User-Id and X-Auth-Token
// headers (protocol spec §4.0). AuthToken is a resume token or a personal
// access token (PAT).
//
// String, GoString and LogValue never show AuthToken, so printing or
// logging a Credentials value cannot leak the token.
type Credentials struct {
	UserID    string
	AuthToken string
}

// String returns the user ID with the token redacted.
func (c Credentials) String() string {
	return "{UserID:" + c.UserID + " AuthToken:" + redactedMark(c.AuthToken) + "}"
}

// GoString is used by %#v; it redacts the token.
func (c Credentials) GoString() string {
	return fmt.Sprintf("rocketchat.Credentials{UserID:%q, AuthToken:%q}", c.UserID, redactedMark(c.AuthToken))
}

// LogValue logs only the user ID (slog.LogValuer).
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user_id", c.UserID))
}

func redactedMark(secret string) string {
	if secret == "" {
		return ""
	}
	return "[redacted]"
}

// Email is one entry of a user's emails array.
type Email struct {
	Address  string `json:"address"`
	Verified bool   `json:"verified"`
}

// User is the subset of Rocket.Chat's user object rcsso reads
// (users.info, users.create, users.update, me; protocol spec §5).
type User struct {
	ID       string   `json:"_id"`
	Username string   `json:"username"`
	Name     string   `json:"name,omitempty"`
	Emails   []Email  `json:"emails,omitempty"`
	Active   bool     `json:"active"`
	Roles    []string `json:"roles,omitempty"`
	Type     string   `json:"type,omitempty"`
	// CustomFields are the user's custom fields (only the declared
	// Accounts_CustomFields keys; values are usually strings).
	CustomFields map[string]any `json:"customFields,omitempty"`
	// CreatedAt is when the user was created; users.info shows it only to
	// callers with view-full-other-user-info (Rocket.Chat
	// apps/meteor/server/lib/getFullUserData.ts, fullFields). Zero when
	// absent or unreadable.
	CreatedAt Time `json:"createdAt,omitzero"`
}

// Time is a Rocket.Chat REST date (an ISO 8601 string such as
// "2026-11-30T15:37:53.123Z"). A value that is absent, null or not a date
// decodes as the zero time instead of failing the whole answer.
type Time struct{ time.Time }

// UnmarshalJSON implements json.Unmarshaler leniently.
func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil {
		t.Time = time.Time{}
		return nil
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		v = time.Time{}
	}
	t.Time = v
	return nil
}

// LoginResult is the data of a successful POST /api/v1/login
// (`{"status":"success","data":{"userId","authToken","me"}}`, spec §4.1).
// String, GoString and LogValue never show AuthToken.
type LoginResult struct {
	UserID    string `json:"userId"`
	AuthToken string `json:"authToken"`
	Me        *User  `json:"me,omitempty"`
}

// Credentials returns the X-User-Id / X-Auth-Token pair of the login.
func (r LoginResult) Credentials() Credentials {
	return Credentials{UserID: r.UserID, AuthToken: r.AuthToken}
}

// String returns the user ID with the token redacted.
func (r LoginResult) String() string {
	return "{UserID:" + r.UserID + " AuthToken:" + redactedMark(r.AuthToken) + "}"
}

// GoString is used by %#v; it redacts the token.
func (r LoginResult) GoString() string {
	return fmt.Sprintf("rocketchat.LoginResult{UserID:%q, AuthToken:%q, Me:%#v}", r.UserID, redactedMark(r.AuthToken), r.Me)
}

// LogValue logs only the user ID (slog.LogValuer).
func (r LoginResult) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user_id", r.UserID))
}

// ServerInfo is GET /api/info (unauthenticated: only the version).
type ServerInfo struct {
	Version string `json:"version"`
	// SupportedVersions is the list of supported versions Rocket.Chat Cloud
	// signed for a registered workspace, as Rocket.Chat hands it out (a JWT
	// whose payload is {timestamp, versions:[{version, expiration}], …});
	// "" when the server has none (RocketChat/Rocket.Chat
	// apps/meteor/app/api/server/lib/getServerInfo.ts). Outside input:
	// parse it defensively.
	SupportedVersions string `json:"supportedVersions,omitempty"`
}

// Major returns the major version (7 for "7.13.7", 8 for "8.0.0-rc.1"), or
// 0 when Version does not start with a number.
func (s ServerInfo) Major() int {
	v := strings.TrimPrefix(strings.TrimSpace(s.Version), "v")
	if i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0
	}
	return n
}

// RequiresTokenSecret reports whether users.createToken needs the "secret"
// body field (8.0+, protocol spec §4.7). Unknown versions report false.
func (s ServerInfo) RequiresTokenSecret() bool {
	return s.Major() >= tokenSecretSinceMajor
}

// CreateUserRequest is the body of POST /api/v1/users.create (spec §4.5).
type CreateUserRequest struct {
	Email               string   `json:"email"`
	Name                string   `json:"name"`
	Password            string   `json:"password"`
	Username            string   `json:"username"`
	Active              *bool    `json:"active,omitempty"`
	Roles               []string `json:"roles,omitempty"`
	JoinDefaultChannels bool     `json:"joinDefaultChannels"`
	RequirePassword     bool     `json:"requirePasswordChange"`
	SendWelcomeEmail    bool     `json:"sendWelcomeEmail"`
	Verified            bool     `json:"verified"`
	// CustomFields sets declared custom fields (Accounts_CustomFields).
	CustomFields map[string]string `json:"customFields,omitempty"`
}

// UpdateUserData is the "data" object of POST /api/v1/users.update (spec
// §4.6). Nil fields are not sent.
type UpdateUserData struct {
	Email    *string  `json:"email,omitempty"`
	Name     *string  `json:"name,omitempty"`
	Username *string  `json:"username,omitempty"`
	Verified *bool    `json:"verified,omitempty"`
	Active   *bool    `json:"active,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	// Password sets a new password (needs edit-other-user-password for
	// other users). Redacted from errors; never logged.
	Password *string `json:"password,omitempty"`
	// CustomFields sets declared custom fields.
	CustomFields map[string]string `json:"customFields,omitempty"`
}

// Version profiles of Rocket.Chat relevant to rcsso (spec §8).
const (
	tokenSecretSinceMajor = 8
)

// defaultTimeout bounds every REST call unless the context has an earlier
// deadline.
const defaultTimeout = 10 * time.Second
