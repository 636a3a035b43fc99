package rcemu

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"slices"
	"sort"
	"strings"
	"time"
)

// Email is one entry of a user's emails array (spec §5).
type Email struct {
	Address  string `json:"address"`
	Verified bool   `json:"verified"`
}

// tokenEntry is one element of services.resume.loginTokens (spec §2.2):
// a resume token {when, hashedToken} or a personal access token (no when).
type tokenEntry struct {
	hashedToken     string
	when            time.Time // zero for a PAT
	pat             bool
	createdAt       time.Time // PAT only
	lastTokenPart   string    // PAT only
	name            string    // PAT only
	bypassTwoFactor bool      // PAT only
	seq             uint64    // insertion order, breaks ties of when
}

// user is a document of the users collection (spec §5). Guarded by
// Server.mu.
type user struct {
	id, username, name string
	emails             []Email
	typ                string
	status             string
	active             bool
	roles              []string
	createdAt          time.Time
	updatedAt          time.Time
	lastLogin          time.Time
	bcrypt             []byte // services.password.bcrypt; nil = no password
	tokens             []tokenEntry
	hasResume          bool        // services.resume exists (see Bug40598)
	iframeToken        string      // services.iframe.token
	email2fa           bool        // services.email2fa.enabled
	totpSecret         string      // services.totp.secret when services.totp.enabled (twofactor.go)
	emailCodes         []emailCode // services.emailCode (twofactor.go)
	requirePWChange    bool
	bio, nickname      string
	statusText         string
	settings           map[string]any
	avatarURL          string // last users.setAvatar avatarUrl (the emulator keeps the URL, not the image)

	// oauth is services.<name>.id of Custom OAuth logins (oauth.go).
	oauth map[string]string
}

// resumeCount is the number of {when} tokens (PATs excluded).
func (u *user) resumeCount() int {
	n := 0
	for _, t := range u.tokens {
		if !t.pat {
			n++
		}
	}
	return n
}

func (u *user) patCount() int { return len(u.tokens) - u.resumeCount() }

func (u *user) findToken(hashed string) (tokenEntry, bool) {
	for _, t := range u.tokens {
		if t.hashedToken == hashed {
			return t, true
		}
	}
	return tokenEntry{}, false
}

func (u *user) removeToken(hashed string) bool {
	before := len(u.tokens)
	u.tokens = slices.DeleteFunc(u.tokens, func(t tokenEntry) bool { return t.hashedToken == hashed })
	return len(u.tokens) != before
}

func (u *user) hasVerifiedEmail() bool {
	for _, e := range u.emails {
		if e.Verified {
			return true
		}
	}
	return false
}

func (u *user) hasRole(r string) bool { return slices.Contains(u.roles, r) }

// store is the in-memory users collection with its unique indexes
// (username and emails.address, compared case-insensitively like
// Rocket.Chat's application checks; spec §5). Guarded by Server.mu.
type store struct {
	users      map[string]*user
	byUsername map[string]string // lower-case username -> _id
	byEmail    map[string]string // lower-case address -> _id
	order      []string          // _ids in creation order
	seq        uint64
}

func newStore() *store {
	return &store{users: map[string]*user{}, byUsername: map[string]string{}, byEmail: map[string]string{}}
}

func (st *store) insert(u *user) {
	st.users[u.id] = u
	st.byUsername[strings.ToLower(u.username)] = u.id
	for _, e := range u.emails {
		st.byEmail[strings.ToLower(e.Address)] = u.id
	}
	st.order = append(st.order, u.id)
}

func (st *store) remove(id string) {
	u := st.users[id]
	if u == nil {
		return
	}
	delete(st.users, id)
	delete(st.byUsername, strings.ToLower(u.username))
	for _, e := range u.emails {
		if st.byEmail[strings.ToLower(e.Address)] == id {
			delete(st.byEmail, strings.ToLower(e.Address))
		}
	}
	st.order = slices.DeleteFunc(st.order, func(s string) bool { return s == id })
}

// reindex refreshes the unique indexes after u's username or emails
// changed from oldUsername/oldEmails.
func (st *store) reindex(u *user, oldUsername string, oldEmails []Email) {
	if st.byUsername[strings.ToLower(oldUsername)] == u.id {
		delete(st.byUsername, strings.ToLower(oldUsername))
	}
	st.byUsername[strings.ToLower(u.username)] = u.id
	for _, e := range oldEmails {
		if st.byEmail[strings.ToLower(e.Address)] == u.id {
			delete(st.byEmail, strings.ToLower(e.Address))
		}
	}
	for _, e := range u.emails {
		st.byEmail[strings.ToLower(e.Address)] = u.id
	}
}

// usernameTaken reports a case-insensitive collision with another user.
func (st *store) usernameTaken(username, exceptID string) bool {
	id, ok := st.byUsername[strings.ToLower(username)]
	return ok && id != exceptID
}

func (st *store) emailTaken(addr, exceptID string) bool {
	id, ok := st.byEmail[strings.ToLower(addr)]
	return ok && id != exceptID
}

// byUsernameExact is Mongo's exact match on username.
func (st *store) byUsernameExact(username string) *user {
	id, ok := st.byUsername[strings.ToLower(username)]
	if !ok || st.users[id].username != username {
		return nil
	}
	return st.users[id]
}

// findForLogin is Meteor's Accounts._findUserByQuery: exact match first,
// then a case-insensitive one (unique by construction here).
func (st *store) findForLogin(field, value string) *user {
	switch field {
	case "id":
		return st.users[value]
	case "username":
		if id, ok := st.byUsername[strings.ToLower(value)]; ok {
			return st.users[id]
		}
	case "email":
		if id, ok := st.byEmail[strings.ToLower(value)]; ok {
			return st.users[id]
		}
	}
	return nil
}

// byToken finds the user holding hashed in services.resume.loginTokens.
func (st *store) byToken(hashed string) (*user, tokenEntry) {
	for _, id := range st.order {
		u := st.users[id]
		if t, ok := u.findToken(hashed); ok {
			return u, t
		}
	}
	return nil, tokenEntry{}
}

func (st *store) byIframeToken(token string) *user {
	for _, id := range st.order {
		if u := st.users[id]; u.iframeToken != "" && u.iframeToken == token {
			return u
		}
	}
	return nil
}

// pushResume stores a new resume token {when, hashedToken} and trims the
// oldest {when} tokens beyond max (MAX_RESUME_LOGIN_TOKENS; PATs are never
// counted nor dropped; spec §2.2).
func (st *store) pushResume(u *user, token string, when time.Time, max int) {
	st.seq++
	u.tokens = append(u.tokens, tokenEntry{hashedToken: hashToken(token), when: when, seq: st.seq})
	u.hasResume = true
	if max > 0 {
		trimResume(u, max)
	}
}

func trimResume(u *user, max int) {
	var resume []tokenEntry
	for _, t := range u.tokens {
		if !t.pat {
			resume = append(resume, t)
		}
	}
	if len(resume) <= max {
		return
	}
	sort.SliceStable(resume, func(i, j int) bool {
		if !resume[i].when.Equal(resume[j].when) {
			return resume[i].when.Before(resume[j].when)
		}
		return resume[i].seq < resume[j].seq
	})
	drop := map[string]bool{}
	for _, t := range resume[:len(resume)-max] {
		drop[t.hashedToken] = true
	}
	u.tokens = slices.DeleteFunc(u.tokens, func(t tokenEntry) bool { return !t.pat && drop[t.hashedToken] })
}

// hashToken is Meteor's Accounts._hashLoginToken:
// base64(std, padded)(sha256(token)) (spec §2.2).
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// sha256Hex is how Meteor pre-hashes passwords (and the 2FA password code).
func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

const (
	unmistakableChars = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
	base64Chars       = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
)

// randomID is Meteor's Random.id(): 17 unmistakable characters.
func randomID() string { return randomString(17, unmistakableChars) }

// randomSecret is Meteor's Random.secret(): 43 characters of [A-Za-z0-9_-].
func randomSecret() string { return randomString(43, base64Chars) }

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("rcemu: crypto/rand: " + err.Error())
		}
		b[i] = alphabet[v.Int64()]
	}
	return string(b)
}

// isoTime formats a Date the way Rocket.Chat's JSON does.
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
