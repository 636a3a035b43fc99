package rocketchat

import (
	"time"
)

// Credentials authenticate a REST call: the X-User-Id and X-Auth-Token
// headers (protocol spec §4.0). AuthToken is a resume token or a personal
// access token (PAT).
type Credentials struct {
	UserID    string
	AuthToken string
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
}

// LoginResult is the data of a successful POST /api/v1/login
// (`{"status":"success","data":{"userId","authToken","me"}}`, spec §4.1).
type LoginResult struct {
	UserID    string `json:"userId"`
	AuthToken string `json:"authToken"`
	Me        *User  `json:"me,omitempty"`
}

// ServerInfo is GET /api/info (unauthenticated: only the version).
type ServerInfo struct {
	Version string `json:"version"`
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
}

// Version profiles of Rocket.Chat relevant to rcsso (spec §8).
const (
	tokenSecretSinceMajor = 8
)

// defaultTimeout bounds every REST call unless the context has an earlier
// deadline.
const defaultTimeout = 10 * time.Second
