package flowstate

import (
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

type st struct {
	S string `json:"s"`
	T int64  `json:"t"`
}

var key = []byte("0123456789abcdef0123456789abcdef")

func codec(t testing.TB, format, name string) *Codec[st] {
	t.Helper()
	c, err := New[st](key, format, name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A value opens only with the codec of its key, format and source name;
// everything else is ErrInvalid.
func TestSealOpenBinding(t *testing.T) {
	c := codec(t, "rcsso-test-state/v1", "a")
	v, err := c.Seal(st{"x", 1})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Open(v); err != nil || got != (st{"x", 1}) {
		t.Fatalf("Open = %+v, %v", got, err)
	}
	other, _ := New[st]([]byte("fedcba9876543210fedcba9876543210"), "rcsso-test-state/v1", "a")
	for name, tc := range map[string]struct {
		c *Codec[st]
		v string
	}{
		"other source":   {codec(t, "rcsso-test-state/v1", "b"), v},
		"other format":   {codec(t, "rcsso-other-state/v1", "a"), v},
		"other key":      {other, v},
		"truncated":      {c, v[:len(v)-1]},
		"padded":         {c, v + "="},
		"newline inside": {c, v[:10] + "\n" + v[10:]},
		"empty":          {c, ""},
		"too long":       {c, strings.Repeat("A", MaxCookie+1)},
	} {
		if _, err := tc.c.Open(tc.v); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if _, err := New[st]([]byte("short"), "f", "a"); err == nil {
		t.Error("a short key was accepted")
	}
}

func TestFresh(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		issued time.Time
		want   bool
	}{
		{now, true},
		{now.Add(-10 * time.Minute), true},
		{now.Add(-10*time.Minute - time.Second), false},
		{now.Add(ClockSkew), true},
		{now.Add(ClockSkew + time.Second), false},
	} {
		if got := Fresh(tc.issued.Unix(), now, 10*time.Minute); got != tc.want {
			t.Errorf("Fresh(%v) = %v", tc.issued.Sub(now), got)
		}
	}
}

// FuzzOpen: Open never panics and accepts nothing but values Seal made.
func FuzzOpen(f *testing.F) {
	c := codec(f, "rcsso-test-state/v1", "a")
	valid := map[string]st{}
	for i, s := range []st{{"a", 1}, {"", 0}} {
		v, err := c.SealNonce(s, []byte(strings.Repeat(strconv.Itoa(i), 12)))
		if err != nil {
			f.Fatal(err)
		}
		valid[v] = s
		f.Add(v)
		f.Add(strings.ToUpper(v))
		f.Add(v[1:])
	}
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, in string) {
		got, err := c.Open(in)
		want, ok := valid[in]
		switch {
		case err == nil && (!ok || got != want):
			t.Fatalf("Open(%q) = %+v, want nothing or %+v", in, got, want)
		case err != nil && ok:
			t.Fatalf("a value Seal made was refused: %v", err)
		case err != nil && !errors.Is(err, ErrInvalid):
			t.Fatalf("error %v does not wrap ErrInvalid", err)
		}
	})
}

func TestReturnTo(t *testing.T) {
	same := func(s string) string { return s }
	for _, tc := range []struct {
		safe      func(string) string
		raw, want string
	}{
		{same, "/chat", "/chat"},
		{nil, "/chat", ""},
		{same, "", ""},
		{same, "/" + strings.Repeat("a", MaxReturnTo), ""},
		{func(string) string { return "" }, "https://evil.example", ""},
		{func(string) string { return "/" + strings.Repeat("a", MaxReturnTo) }, "/x", ""},
	} {
		if got := ReturnTo(tc.safe, tc.raw); got != tc.want {
			t.Errorf("ReturnTo(%.20q) = %.20q, want %q", tc.raw, got, tc.want)
		}
	}
}

// A flow's page escapes what it shows and forbids scripts, and, when asked,
// framing.
func TestPage(t *testing.T) {
	for _, noFraming := range []bool{false, true} {
		w := httptest.NewRecorder()
		Page(w, 400, "Login failed", `<script>alert(1)</script>`, noFraming)
		csp := w.Header().Get("Content-Security-Policy")
		if w.Code != 400 || strings.Contains(w.Body.String(), "<script>") || !strings.Contains(csp, "default-src 'none'") ||
			strings.Contains(csp, "frame-ancestors 'none'") != noFraming {
			t.Fatalf("noFraming %v: %d %q %s", noFraming, w.Code, csp, w.Body)
		}
	}
}
