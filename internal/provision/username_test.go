package provision

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

var rcUsername = regexp.MustCompile(`^[0-9a-zA-Z-_.]+$`)

func TestMapUsername(t *testing.T) {
	cases := map[string]string{
		"alice":              "alice",
		"Alice":              "alice",
		"José Álvarez":       "jose.alvarez",
		"Zoë O'Brien":        "zoe.o.brien",
		"straße":             "strasse",
		"bob@example.com":    "bob.example.com",
		"  spaced  out  ":    "spaced.out",
		"..dots..":           "dots",
		"under_score-dash.x": "under_score-dash.x",
	}
	for _, in := range []string{"李小龙", "🙂", "!!!"} {
		if got := MapUsername(in, "s:"+in); !strings.HasPrefix(got, "user-") || len(got) != len("user-")+6 {
			t.Errorf("MapUsername(%q) = %q, want user-<suffix>", in, got)
		}
	}
	for in, want := range cases {
		if got := MapUsername(in, "s:"+in); got != want {
			t.Errorf("MapUsername(%q) = %q, want %q", in, got, want)
		}
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

func FuzzMapUsername(f *testing.F) {
	for _, s := range []string{"alice", "José", "李", "", "admin", "a@b", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := MapUsername(s, "sub")
		if !rcUsername.MatchString(got) || reserved[got] || len(got) > MaxUsernameLen {
			t.Fatalf("MapUsername(%q) = %q is not a valid Rocket.Chat username", s, got)
		}
		if got != MapUsername(s, "sub") {
			t.Fatal("not deterministic")
		}
	})
}

func TestUTF8UsernameRule(t *testing.T) {
	r, err := NewUsernameRule(`[\p{L}\p{N}\-_.]+`)
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"José Álvarez": "josé.álvarez",
		"李小龙":          "李小龙",
		"Ünal 🙂 Kaya":  "ünal.kaya",
	} {
		if got := r.Map(in, "s"); got != want {
			t.Errorf("Map(%q) = %q, want %q", in, got, want)
		}
	}
	noDots, _ := NewUsernameRule(`[a-z0-9_]+`)
	if got := noDots.Map("Jane Q. Public", "s"); got != "jane_q_public" {
		t.Errorf("rule without dots: %q", got)
	}
	if _, err := NewUsernameRule(`[a-z`); err == nil {
		t.Error("broken pattern accepted")
	}
}
