package provision

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mtibben/confusables"
	"golang.org/x/text/unicode/norm"
)

var rcUsername = regexp.MustCompile(`^[0-9a-zA-Z-_.]+$`)

// suffix is the suffix Map gives the lossy names of subject.
func suffix(subject string) string { return "-" + Digest(subject)[:6] }

func TestMapUsername(t *testing.T) {
	clean := map[string]string{
		"alice":              "alice",
		"Alice":              "alice",
		"ALICE":              "alice",
		"under_score-dash.x": "under_score-dash.x",
		"a.b":                "a.b",
		"a..b":               "a..b",
		"x1":                 "x1",
	}
	for in, want := range clean {
		if got := MapUsername(in, "s:"+in); got != want {
			t.Errorf("MapUsername(%q) = %q, want %q unchanged", in, got, want)
		}
	}
	lossy := map[string]string{ // input → stem before the suffix
		"José Álvarez":    "jose.alvarez",
		"Zoë O'Brien":     "zoe.o.brien",
		"straße":          "strasse",
		"bob@example.com": "bob.example.com",
		"  spaced  out  ": "spaced.out",
		"..dots..":        "dots",
		"bob - smith":     "bob-smith",
		"a .. b":          "a.b",
		"x ._ y":          "x.y",
		"李小龙":             "li.xiao.long",
		"🙂":               "user",
		"!!!":             "user",
		"":                "user",
	}
	for in, stem := range lossy {
		if got, want := MapUsername(in, "s:"+in), stem+suffix("s:"+in); got != want {
			t.Errorf("MapUsername(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestMapUsernameHostile: issue 8, item 3. Only a name that already is a
// valid Rocket.Chat username (case aside) is handed out unchanged; every
// lossy mapping carries the subject's suffix, so a look-alike never takes
// the clean name of the person it imitates.
func TestMapUsernameHostile(t *testing.T) {
	clean := []string{"henry", "irene", "jack", "alice", "paypal", "bob", "kelvin", "vasia", "anna", "emile", "ecila",
		"HENRY", "Irene", "jack.smith", "hen.ry", "a-b_c.d", strings.Repeat("a", MaxUsernameLen)}
	lossy := map[string]string{ // input → stem before the suffix
		// The examples.
		"henry_": "henry", "Irene.": "irene", "\uff4aack": "jack", "вася": "vasia", "\u0430lice": "alice",
		// Leading and trailing separators and spaces.
		"_henry": "henry", "-irene-": "irene", ".jack": "jack", "henry ": "henry", " henry": "henry", "henry\t": "henry",
		"henry__": "henry", "hen ry": "hen.ry",
		// Fullwidth and other compatibility forms.
		"\uff2a\uff21\uff23\uff2b": "jack", "\U0001d41alice": "alice", "\u212aelvin": "kelvin", "ｂｏｂ": "bob",
		// Cyrillic and Greek look-alikes, mixed scripts.
		"\u0430lic\u0435": "alice", "p\u0430yp\u0430l": "paypal", "b\u03bfb": "bob", "\u0391\u039d\u039d\u0391": "anna",
		"\u0399rene": "irene", "Вася": "vasia", "henry\u0440": "henryr",
		// Case mappings that are not plain pairs.
		"\u0130rene": "irene", "ırene": "irene",
		// Combining marks.
		"e\u0301mile": "emile", "alice\u0336": "alice", "ali\u0307ce": "alice", "he\u0308nry": "henry",
		// Invisible characters.
		"al\u200dice": "alice", "ali\u200bce": "alice", "\u200balice": "alice", "alice\u200c": "alice",
		"\ufeffhenry": "henry", "hen\u00adry": "henry", "henry\u2060": "henry",
		// Direction overrides.
		"\u202eecila": "ecila", "alice\u202e": "alice", "\u202dhenry\u202c": "henry", "\u2067jack\u2069": "jack",
		// Reserved names and their variants.
		"admin": "admin", "Admin": "admin", "ADMIN.": "admin", "\u0430dmin": "admin", "ADM\u0130N": "admin", "ａｄｍｉｎ": "admin",
		"all": "all", "Here": "here", "user": "user", "SYSTEM": "system", "administrator": "administrator",
		// Too long.
		strings.Repeat("a", MaxUsernameLen+1): strings.Repeat("a", MaxUsernameLen-7),
	}
	for _, in := range clean {
		if got := MapUsername(in, "s:"+in); got != strings.ToLower(in) {
			t.Errorf("clean %q mapped to %q, want it unchanged", in, got)
		}
	}
	for in, stem := range lossy {
		got := MapUsername(in, "s:"+in)
		if want := WithSuffix(stem, "s:"+in); got != want {
			t.Errorf("lossy %q mapped to %q, want %q", in, got, want)
		}
		if !rcUsername.MatchString(got) || reserved[got] {
			t.Errorf("lossy %q mapped to %q, not a valid Rocket.Chat username", in, got)
		}
	}
	// No two names get the same username unless they differ only in the
	// case of ASCII letters (Rocket.Chat compares usernames that way too).
	asciiCase := func(a, b string) bool {
		for _, r := range a + b {
			if r >= utf8.RuneSelf {
				return a == b
			}
		}
		return strings.EqualFold(a, b)
	}
	all := append([]string{}, clean...)
	for in, stem := range lossy {
		all = append(all, in, stem)
	}
	byName := map[string]string{}
	for _, in := range all {
		got := MapUsername(in, "s:"+in)
		if other, ok := byName[got]; ok && !asciiCase(other, in) {
			t.Errorf("%q and %q both map to %q", other, in, got)
		}
		byName[got] = in
	}
}

func TestMapUsernameReservedAndLong(t *testing.T) {
	for _, r := range []string{"admin", "Administrator", "SYSTEM", "user", "all", "here"} {
		got := MapUsername(r, "local:"+r)
		if reserved[got] || !strings.HasPrefix(got, strings.ToLower(r)+"-") {
			t.Errorf("reserved %q mapped to %q", r, got)
		}
	}
	long := strings.Repeat("abcdefghij", 10)
	if got := MapUsername(long, "x"); utf8.RuneCountInString(got) > MaxUsernameLen {
		t.Errorf("too long: %d", len(got))
	}
	if a, b := WithSuffix("alice", "local:alice"), WithSuffix("alice", "header:alice"); a == b || a != WithSuffix("alice", "local:alice") {
		t.Errorf("suffix must be deterministic and subject-specific: %q %q", a, b)
	}
}

func TestUsernameCandidates(t *testing.T) {
	for _, tc := range []struct {
		name, subject string
		want          []string
	}{
		{"alice", "local:alice", []string{"alice", "alice" + suffix("local:alice"), "alice-" + Digest("local:alice")[:12]}},
		{"henry_", "local:h2", []string{"henry" + suffix("local:h2"), "henry-" + Digest("local:h2")[:12]}},
		{strings.Repeat("x", 60), "s", []string{strings.Repeat("x", 41) + suffix("s"), strings.Repeat("x", 35) + "-" + Digest("s")[:12]}},
	} {
		got := defaultRule.Candidates(tc.name, tc.subject)
		if !slices.Equal(got, tc.want) {
			t.Errorf("Candidates(%q, %q) = %q, want %q", tc.name, tc.subject, got, tc.want)
		}
		if got[0] != MapUsername(tc.name, tc.subject) {
			t.Errorf("Candidates(%q)[0] = %q, Map gives %q", tc.name, got[0], MapUsername(tc.name, tc.subject))
		}
	}
	if a, b := defaultRule.Candidates("henry_", "s:1"), defaultRule.Candidates("henry_", "s:2"); a[0] == b[0] || a[1] == b[1] {
		t.Errorf("two subjects share a candidate: %q %q", a, b)
	}
}

func TestUTF8UsernameRule(t *testing.T) {
	r, err := NewUsernameRule(`[\p{L}\p{N}\-_.]+`)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"José":    "josé",
		"李小龙":     "李小龙",
		"josé.李":  "josé.李",
		"Ünal":    "ünal",
		"ひらがな.漢字": "ひらがな.漢字",
	} {
		if got := r.Map(in, "s"); got != want {
			t.Errorf("clean Map(%q) = %q, want %q", in, got, want)
		}
	}
	for in, stem := range map[string]string{
		"José Álvarez":       "josé.álvarez",
		"Ünal 🙂 Kaya":        "ünal.kaya",
		"\u0430lice":         "alice", // Cyrillic а among Latin letters
		"вася":               "vasia", // whole-script look-alike of Latin
		"b\u03bfb":           "bob",   // Greek omicron
		"\uff4aack":          "jack",
		"\u0130rene":         "irene",
		"李小龙\u0430":          "li.xiao.long.a",
		"e\u0301mile\u200b":  "émile",
		"s\u00f8ren":         "soren", // ø is a UTS #39 look-alike of o with a stroke
		"\u0430dmin":         "admin",
		"admin":              "admin",
		"\u2067henry\u2069_": "henry",
	} {
		if got, want := r.Map(in, "s"), stem+suffix("s"); got != want {
			t.Errorf("lossy Map(%q) = %q, want %q", in, got, want)
		}
	}
	// A rule that admits anything but spaces still keeps invisible and
	// combining characters out of clean names.
	loose, _ := NewUsernameRule(`\S+`)
	for _, in := range []string{"alice\u200b", "al\u200dice", "alice\u202e", "ali\u0336ce", "o\u0338le", "\u0430lice"} {
		if got := loose.Map(in, "s"); !strings.HasSuffix(got, suffix("s")) {
			t.Errorf(`rule \S+: Map(%q) = %q, want a suffix`, in, got)
		}
	}
	noDots, _ := NewUsernameRule(`[a-z0-9_]+`)
	if got, want := noDots.Map("Jane Q. Public", "s"), "jane_q_public_"+Digest("s")[:6]; got != want {
		t.Errorf("rule without dots: %q, want %q", got, want)
	}
	if got := noDots.Map("jane_q", "s"); got != "jane_q" {
		t.Errorf("rule without dots: clean %q", got)
	}
	if _, err := NewUsernameRule(`[a-z`); err == nil {
		t.Error("broken pattern accepted")
	}
}

// asciiSkeleton is the UTS #39 skeleton of s with ASCII characters kept as
// they are (see Map).
func asciiSkeleton(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if r < utf8.RuneSelf {
			b.WriteRune(r)
		} else {
			b.WriteString(confusables.Skeleton(string(r)))
		}
	}
	return norm.NFD.String(b.String())
}

func FuzzMapUsername(f *testing.F) {
	for _, s := range []string{"alice", "José", "李", "", "admin", "a@b", strings.Repeat("x", 300),
		"henry_", "Irene.", "\uff4aack", "вася", "\u0430lice", "\u0130rene", "\u212aelvin", "al\u200bice", "\u202eecila",
		"e\u0301mile", "ADMIN.", "s\u00f8ren", "李小龙", "ひらがな"} {
		f.Add(s)
	}
	utf8Rule, err := NewUsernameRule(`[\p{L}\p{N}._-]+`)
	if err != nil {
		f.Fatal(err)
	}
	sfx := suffix("sub")
	f.Fuzz(func(t *testing.T, s string) {
		for _, rule := range []struct {
			name  string
			r     UsernameRule
			valid func(string) bool
		}{
			{"default", defaultRule, rcUsername.MatchString},
			{"utf8", utf8Rule, utf8Rule.re.MatchString},
		} {
			got := rule.r.Map(s, "sub")
			if !rule.valid(got) || reserved[got] || utf8.RuneCountInString(got) > MaxUsernameLen {
				t.Fatalf("%s rule: Map(%q) = %q is not a valid Rocket.Chat username", rule.name, s, got)
			}
			if got != rule.r.Map(s, "sub") {
				t.Fatalf("%s rule: Map(%q) is not deterministic", rule.name, s)
			}
			if !strings.HasSuffix(got, sfx) {
				// Suffix-free: the name itself, lower-cased, and no look-alike.
				if got != strings.ToLower(s) {
					t.Fatalf("%s rule: Map(%q) = %q changed the name without the suffix", rule.name, s, got)
				}
				if asciiSkeleton(got) != norm.NFD.String(got) {
					t.Fatalf("%s rule: Map(%q) = %q has confusable characters but no suffix", rule.name, s, got)
				}
			}
			c := rule.r.Candidates(s, "sub")
			if c[0] != got || c[1] == got || !rule.valid(c[1]) || utf8.RuneCountInString(c[1]) > MaxUsernameLen ||
				!strings.Contains(c[1], Digest("sub")[:6]) {
				t.Fatalf("%s rule: Candidates(%q) = %q", rule.name, s, c)
			}
			if last := c[len(c)-1]; !rule.valid(last) || utf8.RuneCountInString(last) > MaxUsernameLen || !strings.Contains(last, Digest("sub")[:12]) {
				t.Fatalf("%s rule: Candidates(%q) = %q: the last candidate lacks the long suffix", rule.name, s, c)
			}
		}
	})
}
