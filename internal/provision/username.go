package provision

import (
	"crypto/sha256"
	"encoding/base32"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mozillazg/go-unidecode"
	"github.com/mtibben/confusables"
	"golang.org/x/text/unicode/norm"
)

// MaxUsernameLen bounds generated Rocket.Chat usernames (runes).
const MaxUsernameLen = 48

// maxSourceRunes bounds how much of a website user name Map reads (runes):
// the name comes from outside, and only the start of it can end up in a
// username of MaxUsernameLen runes.
const maxSourceRunes = 256

// suffixLen and fallbackSuffixLen are the lengths of the subject digest in
// a mapped username's suffix and in the fallback's (characters of Digest).
const (
	suffixLen         = 6
	fallbackSuffixLen = 12
)

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

// Map maps a website user name onto the rule, deterministically.
//
// A clean name is handed out unchanged apart from lower-casing: "Alice" →
// "alice". A name is clean when its lower-cased form matches the rule, is
// not reserved (admin, all, here, …), has at most MaxUsernameLen runes,
// neither starts nor ends with '.', '-' or '_' ("@irene." reads as "@irene"
// and a full stop), is NFKC-stable, changes case only by plain
// upper/lower pairs (so neither "İrene" nor a Kelvin sign becomes an ASCII
// name), has no control, format or space characters, and is no look-alike:
// every non-ASCII character is its own UTS #39 confusable skeleton, no
// combining mark sits on a Latin, Greek, Cyrillic or common base, and it
// does not mix scripts beyond UTS #39's "highly restrictive" level (one
// script, or Latin with Han and Hiragana/Katakana, Bopomofo or Hangul).
// ASCII characters count as their own skeleton: Rocket.Chat's default rule
// itself admits "rn" beside "m" and "1" beside "l".
//
// Every other name is lossy and ALWAYS gets the subject's suffix (WithSuffix,
// "-" and 6 characters of Digest(subject)), so it never equals the clean
// name it resembles: "henry_" → "henry-k3v7qa", "ｊack" → "jack-…",
// Cyrillic "аlice" → "alice-…", "admin" → "admin-…". Its stem is the name
// after NFKC and lower-casing, with characters the rule refuses (or, when
// the name has a look-alike, every non-ASCII character) transliterated by
// github.com/mozillazg/go-unidecode ("вася" → "vasia", "李小龙" →
// "li.xiao.long"); runs of characters with no usable transliteration become
// one '.' (or '_' or '-' when the rule refuses '.'), format characters such as
// zero-width spaces and direction overrides are dropped, leading and
// trailing separators are trimmed, an empty stem becomes "user", and the
// stem is cut so that the whole fits MaxUsernameLen. Only the first 256
// runes of name are read (maxSourceRunes). If the suffixed result still does not match the
// rule it becomes "user" and the suffix when that matches.
func (u UsernameRule) Map(name, subject string) string {
	stem, clean := u.mapStem(name)
	if clean {
		return stem
	}
	return u.suffixed(stem, subject, suffixLen)
}

// Candidates are the usernames provisioning tries for name, in order:
// Map(name, subject), then fallbacks for when other people hold the
// earlier ones. The fallbacks are deterministic and differ per subject: a
// clean name gets the suffix, then a longer one ("alice" → "alice-k3v7qa"
// → "alice-k3v7qa7mwd2x"); a name Map already suffixed gets the longer one
// instead of a second ("henry_" → "henry-k3v7qa", then
// "henry-k3v7qa7mwd2x"). Every candidate matches the rule whenever Map's
// result does. The last candidate always carries fallbackSuffixLen
// characters (60 bits) of the digest: the 6-character suffix (30 bits) is
// within reach of a visitor who searches for a subject of their own whose
// lossy name lands on someone else's fallback.
func (u UsernameRule) Candidates(name, subject string) []string {
	stem, clean := u.mapStem(name)
	if clean {
		return []string{stem, u.suffixed(stem, subject, suffixLen), u.suffixed(stem, subject, fallbackSuffixLen)}
	}
	return []string{u.suffixed(stem, subject, suffixLen), u.suffixed(stem, subject, fallbackSuffixLen)}
}

// WithSuffix appends "-" and a 6-character digest of subject to base,
// cutting base so that the result has at most MaxUsernameLen runes: the
// form Map gives lossy names under rules that accept '-'. Provisioning
// takes its fallback from UsernameRule.Candidates, which never suffixes a
// suffixed name twice.
func WithSuffix(base, subject string) string {
	return withSuffix(base, "-", Digest(subject)[:suffixLen])
}

// Digest is a lower-case base32 SHA-256 digest of s (52 characters).
func Digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
}

func withSuffix(base, sep, digest string) string {
	if r, keep := []rune(base), MaxUsernameLen-utf8.RuneCountInString(sep+digest); len(r) > keep {
		base = strings.TrimRight(string(r[:keep]), ".-_")
	}
	return base + sep + digest
}

// suffixed is stem with n characters of the subject's digest, joined by the
// first of '-', '_', '.' or nothing that the rule accepts; "user" and the
// suffix when that does not match the rule.
func (u UsernameRule) suffixed(stem, subject string, n int) string {
	d := Digest(subject)[:n]
	sep := "-"
	for _, s := range []string{"-", "_", ".", ""} {
		if u.re.MatchString("user" + s + d) {
			sep = s
			break
		}
	}
	if out := withSuffix(stem, sep, d); u.re.MatchString(out) {
		return out
	}
	return withSuffix("user", sep, d)
}

// mapStem returns name lower-cased and clean=true when it is clean (see
// Map), else the lossy stem that Map suffixes.
func (u UsernameRule) mapStem(name string) (stem string, clean bool) {
	name = firstRunes(name, maxSourceRunes)
	if lower := strings.ToLower(name); u.clean(name, lower) {
		return lower, true
	}
	return u.lossyStem(name), false
}

// firstRunes is s cut after n runes.
func firstRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// clean reports whether name (lower-cased: lower) may be handed out as
// lower without a suffix (see Map).
func (u UsernameRule) clean(name, lower string) bool {
	if utf8.RuneCountInString(lower) > MaxUsernameLen || reserved[lower] || !u.re.MatchString(lower) ||
		strings.Trim(lower, ".-_") != lower || !norm.NFKC.IsNormalString(name) || !norm.NFKC.IsNormalString(lower) {
		return false
	}
	for _, r := range name {
		if l := unicode.ToLower(r); l != r && unicode.ToUpper(l) != r {
			return false // İ → i, K (Kelvin) → k, ẞ → ß: not a plain case pair
		}
		if unicode.In(r, unicode.C, unicode.Z) {
			return false
		}
	}
	return !lookAlike(lower)
}

// lookAlike reports whether s (NFC, lower-cased) has a non-ASCII character
// that is not its own UTS #39 confusable skeleton (Cyrillic а → a, ο → o,
// ı → i), a combining mark that did not compose with a Latin, Greek,
// Cyrillic or common base, a character of no script, or a mix of scripts
// beyond UTS #39's "highly restrictive" level.
func lookAlike(s string) bool {
	for _, r := range norm.NFD.String(s) {
		if c := string(r); r >= utf8.RuneSelf && confusables.Skeleton(c) != c {
			return true
		}
	}
	scripts := map[string]bool{}
	base := "Common"
	for _, r := range s {
		if unicode.In(r, unicode.Mn, unicode.Me) {
			switch base {
			case "Latin", "Greek", "Cyrillic", "Common", "Inherited":
				return true // o + U+0338 looks like ø, but is another name
			}
			continue
		}
		base = scriptOf(r)
		switch base {
		case "Unknown":
			return true
		case "Common", "Inherited":
		default:
			scripts[base] = true
		}
	}
	return !highlyRestrictive(scripts)
}

// scriptOf is the Unicode script of r ("Latin", "Cyrillic", "Common", …),
// "Unknown" for unassigned code points.
func scriptOf(r rune) string {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return "Latin"
		}
		return "Common"
	}
	for _, name := range frequentScripts {
		if unicode.Is(unicode.Scripts[name], r) {
			return name
		}
	}
	for name, t := range unicode.Scripts {
		if unicode.Is(t, r) {
			return name
		}
	}
	return "Unknown"
}

// frequentScripts are tried before the rest of unicode.Scripts.
var frequentScripts = []string{"Latin", "Common", "Inherited", "Han", "Cyrillic", "Greek", "Arabic", "Hebrew",
	"Hiragana", "Katakana", "Hangul", "Devanagari", "Thai"}

// highlyRestrictive reports whether a set of scripts (Common and Inherited
// left out) passes UTS #39's "highly restrictive" level: one script, or a
// subset of Latin+Han+Hiragana+Katakana, Latin+Han+Bopomofo or
// Latin+Han+Hangul.
func highlyRestrictive(scripts map[string]bool) bool {
	if len(scripts) <= 1 {
		return true
	}
	for _, allowed := range [][]string{{"Latin", "Han", "Hiragana", "Katakana"}, {"Latin", "Han", "Bopomofo"}, {"Latin", "Han", "Hangul"}} {
		n := 0
		for _, sc := range allowed {
			if scripts[sc] {
				n++
			}
		}
		if n == len(scripts) {
			return true
		}
	}
	return false
}

// lossyStem is the stem Map suffixes for a name that is not clean (see Map).
func (u UsernameRule) lossyStem(name string) string {
	ok := u.re.MatchString
	s := firstRunes(strings.ToLower(norm.NFKC.String(name)), maxSourceRunes) // NFKC may expand 18-fold
	translitAll := lookAlike(s)
	sep := ""
	for _, c := range []string{".", "_", "-"} {
		if ok(c) {
			sep = c
			break
		}
	}
	// A run of separators and unusable characters becomes one separator:
	// the first of the run's own '.', '-' or '_' that the rule accepts, else
	// sep ("bob - smith" → "bob-smith", "Zoë O'Brien" → "zoe.o.brien").
	var b strings.Builder
	pending, pend, explicit := false, "", false
	brk := func(s string, own bool) {
		if !pending || own && !explicit {
			pend, explicit = s, own
		}
		pending = true
	}
	emit := func(t string) {
		if pending && b.Len() > 0 {
			b.WriteString(pend)
		}
		pending, explicit = false, false
		b.WriteString(t)
	}
	asciiWord := func(c rune) bool {
		return c < utf8.RuneSelf && (unicode.IsLetter(c) || unicode.IsDigit(c)) && ok(string(c))
	}
	for _, r := range s {
		if b.Len() > 4*MaxUsernameLen {
			break // the rest is cut anyway
		}
		switch {
		case r == '.' || r == '-' || r == '_':
			if ok(string(r)) {
				brk(string(r), true)
			} else {
				brk(sep, false)
			}
		case r < utf8.RuneSelf:
			if asciiWord(r) {
				emit(string(r))
			} else {
				brk(sep, false)
			}
		case unicode.Is(unicode.Cf, r):
			// Invisible: zero-width spaces and joiners, direction overrides.
		case !translitAll && unicode.In(r, unicode.L, unicode.N, unicode.M) && ok(string(r)):
			emit(string(r))
		default:
			t := strings.ToLower(unidecode.Unidecode(string(r)))
			if t == "" && !unicode.In(r, unicode.M) {
				brk(sep, false) // no transliteration (emoji): a word break
			}
			for _, c := range t {
				if asciiWord(c) {
					emit(string(c))
				} else {
					brk(sep, false)
				}
			}
		}
	}
	out := b.String() // separators only ever sit between words
	if out == "" {
		return "user"
	}
	return out
}
