package provision

import (
	"crypto/sha256"
	"encoding/base32"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// MaxUsernameLen bounds generated Rocket.Chat usernames (runes).
const MaxUsernameLen = 48

// DefaultUsernamePattern is Rocket.Chat's default UTF8_User_Names_Validation
// (protocol spec §2.3), anchored by Rocket.Chat as ^…$.
const DefaultUsernamePattern = `[0-9a-zA-Z-_.]+`

// reserved are usernames Rocket.Chat refuses (built-in "all", "here" and the
// default Accounts_SystemBlockedUsernameList; protocol spec §2.3, §4.5).
var reserved = map[string]bool{"admin": true, "administrator": true, "system": true, "user": true, "all": true, "here": true}

// UsernameRule maps website user names onto a Rocket.Chat username rule.
type UsernameRule struct {
	re *regexp.Regexp // anchored ^(?:pattern)$
}

// NewUsernameRule compiles a UTF8_User_Names_Validation pattern ("" =
// DefaultUsernamePattern). Rocket.Chat anchors it; so does rcsso.
func NewUsernameRule(pattern string) (UsernameRule, error) {
	if pattern == "" {
		pattern = DefaultUsernamePattern
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		return UsernameRule{}, err
	}
	return UsernameRule{re: re}, nil
}

var defaultRule, _ = NewUsernameRule("")

// MapUsername maps name with Rocket.Chat's default rule (see UsernameRule.Map).
func MapUsername(name, subject string) string { return defaultRule.Map(name, subject) }

var stripMarks = transform.Chain(norm.NFKD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)

// Map maps a website user name onto the rule, deterministically: letters
// are lower-cased; a character the rule refuses is replaced by its
// transliteration when that is allowed (é → e, ß → ss), else it ends a
// word: runs of refused characters become one '.' (when '.' is allowed);
// leading and trailing separators are dropped; the result is cut to
// MaxUsernameLen. An empty result becomes "user", and reserved names
// (admin, all, here, …) get the subject's suffix, so the result is never
// reserved. If the result still does not match the rule it becomes
// "user-<suffix>" when that matches.
func (u UsernameRule) Map(name, subject string) string {
	ok := func(s string) bool { return u.re.MatchString(s) }
	sep := ""
	if ok(".") {
		sep = "."
	} else if ok("_") {
		sep = "_"
	}
	var b strings.Builder
	pendingSep := false
	emit := func(s string) {
		if pendingSep && b.Len() > 0 {
			b.WriteString(sep)
		}
		pendingSep = false
		b.WriteString(s)
	}
	for _, r := range strings.ToLower(name) {
		s := string(r)
		if r == '.' || r == '-' || r == '_' || unicode.IsSpace(r) {
			if ok(s) && !unicode.IsSpace(r) {
				emit(s)
			} else {
				pendingSep = true
			}
			continue
		}
		if ok(s) {
			emit(s)
			continue
		}
		t, _, _ := transform.String(stripMarks, s)
		if r == 'ß' {
			t = "ss"
		}
		if t != s && t != "" && ok(t) {
			emit(t)
			continue
		}
		pendingSep = true
	}
	out := strings.Trim(b.String(), ".-_")
	if utf8.RuneCountInString(out) > MaxUsernameLen {
		out = strings.TrimRight(string([]rune(out)[:MaxUsernameLen]), ".-_")
	}
	if out == "" {
		out = "user"
	}
	if reserved[out] {
		out = WithSuffix(out, subject)
	}
	if !ok(out) {
		out = WithSuffix("user", subject)
	}
	return out
}

// WithSuffix appends "-" and a 6-character digest of subject: the
// deterministic, collision-safe alternative when base is taken by someone
// else in Rocket.Chat.
func WithSuffix(base, subject string) string {
	if r := []rune(base); len(r) > MaxUsernameLen-7 {
		base = strings.TrimRight(string(r[:MaxUsernameLen-7]), ".-_")
	}
	return base + "-" + Digest(subject)[:6]
}

// Digest is a lower-case base32 SHA-256 digest of s (52 characters).
func Digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
}
