package provision

import (
	"crypto/sha256"
	"encoding/base32"
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// MaxUsernameLen bounds generated Rocket.Chat usernames (runes).
const MaxUsernameLen = 48

// reserved are usernames Rocket.Chat refuses (built-in "all", "here" and the
// default Accounts_SystemBlockedUsernameList; protocol spec §2.3, §4.5).
var reserved = map[string]bool{"admin": true, "administrator": true, "system": true, "user": true, "all": true, "here": true}

// MapUsername maps a website user name onto Rocket.Chat's default username
// rule ^[0-9a-zA-Z-_.]+$ (setting UTF8_User_Names_Validation): accents are
// stripped (é → e), letters lower-cased, every other run of characters
// becomes one '.', leading/trailing separators are dropped, and the result is
// cut to MaxUsernameLen. It is deterministic. Empty results become "user" and
// reserved names get the subject's suffix, so the result is never reserved.
func MapUsername(name, subject string) string {
	t := transform.Chain(norm.NFKD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	s, _, err := transform.String(t, name)
	if err != nil {
		s = name
	}
	var b strings.Builder
	dot := false
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
			dot = false
		case r >= 'A' && r <= 'Z':
			b.WriteRune(unicode.ToLower(r))
			dot = false
		case r == 'ß':
			b.WriteString("ss")
			dot = false
		default:
			if !dot && b.Len() > 0 {
				b.WriteByte('.')
				dot = true
			}
		}
	}
	out := strings.Trim(b.String(), ".-_")
	if len(out) > MaxUsernameLen {
		out = strings.TrimRight(out[:MaxUsernameLen], ".-_")
	}
	if out == "" {
		out = "user"
	}
	if reserved[out] {
		out = WithSuffix(out, subject)
	}
	return out
}

// WithSuffix appends "-" and a 6-character digest of subject: the
// deterministic, collision-safe alternative when base is taken by someone
// else in Rocket.Chat.
func WithSuffix(base, subject string) string {
	if len(base) > MaxUsernameLen-7 {
		base = strings.TrimRight(base[:MaxUsernameLen-7], ".-_")
	}
	return base + "-" + Digest(subject)[:6]
}

// Digest is a lower-case base32 SHA-256 digest of s (52 characters).
func Digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
}
