package oauth2

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func mustCodec(t testing.TB, name string) *stateCodec {
	c, err := newStateCodec(testKey(), name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var sampleState = loginState{State: "STATE", Verifier: "VERIFIER", ReturnTo: "https://rcsso.example/popup-done", IssuedAt: testNow.Unix()}

func TestStateCodec(t *testing.T) {
	c := mustCodec(t, "gh")
	v, err := c.encode(sampleState)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.decode(v, testNow.Add(StateTTL-time.Second)); err != nil || got != sampleState {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	flip := []byte(v)
	flip[len(flip)/2] ^= 1
	other, _ := newStateCodec([]byte("fedcba9876543210fedcba9876543210"), "gh")
	for name, tc := range map[string]struct {
		v   string
		c   *stateCodec
		now time.Time
	}{
		"expired":      {v, c, testNow.Add(StateTTL + time.Second)},
		"future":       {v, c, testNow.Add(-2 * stateClockSkew)},
		"other source": {v, mustCodec(t, "discord"), testNow},
		"other key":    {v, other, testNow},
		"bit flip":     {string(flip), c, testNow},
		"truncated":    {v[:len(v)-1], c, testNow},
		"newline":      {v[:10] + "\n" + v[10:], c, testNow},
		"padding":      {v + "=", c, testNow},
		"empty":        {"", c, testNow},
		"too long":     {strings.Repeat("A", maxStateCookie+1), c, testNow},
	} {
		if _, err := tc.c.decode(tc.v, tc.now); !errors.Is(err, errState) {
			t.Errorf("%s: err = %v, want errState", name, err)
		}
	}
	// An authentic state without its verifier is refused.
	v2, _ := c.encode(loginState{State: "S", IssuedAt: testNow.Unix()})
	if _, err := c.decode(v2, testNow); !errors.Is(err, errState) {
		t.Errorf("incomplete state accepted: %v", err)
	}
	if _, err := newStateCodec([]byte("short"), "gh"); err == nil {
		t.Error("a short key accepted")
	}
}

// FuzzStateDecode: decode never panics and accepts nothing but the exact
// cookies the codec produced (with the same key and source name).
func FuzzStateDecode(f *testing.F) {
	c := mustCodec(f, "gh")
	valid := map[string]loginState{}
	// Fixed GCM nonces: fuzz workers rebuild this map and must get the same
	// cookies as the process that registered the seeds.
	for i, st := range []loginState{sampleState, {State: "a", Verifier: "c", IssuedAt: testNow.Unix()}} {
		v, err := c.seal(st, []byte(strings.Repeat(strconv.Itoa(i), 12)))
		if err != nil {
			f.Fatal(err)
		}
		valid[v] = st
		f.Add(v)
		f.Add(v[:len(v)-2])
		f.Add(strings.ToUpper(v))
		f.Add(v + "A")
	}
	f.Add("")
	f.Add("AAAA")
	f.Add(strings.Repeat("_", 60))
	f.Fuzz(func(t *testing.T, in string) {
		st, err := c.decode(in, testNow)
		want, ok := valid[in]
		switch {
		case err == nil && !ok:
			t.Fatalf("accepted a cookie the codec never produced: %q → %+v", in, st)
		case err == nil && st != want:
			t.Fatalf("decoded %+v, want %+v", st, want)
		case err != nil && ok:
			t.Fatalf("rejected a genuine cookie: %v", err)
		case err != nil && !errors.Is(err, errState):
			t.Fatalf("error %v does not wrap errState", err)
		}
	})
}
