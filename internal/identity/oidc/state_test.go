package oidc

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

var sampleState = loginState{State: "STATE", Nonce: "NONCE", Verifier: "VERIFIER", ReturnTo: "https://rcsso.example/popup", IssuedAt: testNow.Unix()}

func TestStateCodec(t *testing.T) {
	c := mustCodec(t, "idp")
	v, err := c.encode(sampleState)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.decode(v, testNow.Add(StateTTL-time.Second)); err != nil || got != sampleState {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	flip := []byte(v)
	flip[len(flip)/2] ^= 1
	for name, tc := range map[string]struct {
		v   string
		c   *stateCodec
		now time.Time
	}{
		"expired":      {v, c, testNow.Add(StateTTL + time.Second)},
		"future":       {v, c, testNow.Add(-2 * stateClockSkew)},
		"other source": {v, mustCodec(t, "idp2"), testNow},
		"bit flip":     {string(flip), c, testNow},
		"truncated":    {v[:len(v)-1], c, testNow},
		"newline":      {v[:10] + "\n" + v[10:], c, testNow},
		"padding":      {v + "=", c, testNow},
		"empty":        {"", c, testNow},
	} {
		if _, err := tc.c.decode(tc.v, tc.now); !errors.Is(err, errState) {
			t.Errorf("%s: err = %v, want errState", name, err)
		}
	}
	// Incomplete states are refused even when authentic.
	v2, _ := c.encode(loginState{State: "S", IssuedAt: testNow.Unix()})
	if _, err := c.decode(v2, testNow); !errors.Is(err, errState) {
		t.Errorf("incomplete state accepted: %v", err)
	}
}

func TestSeenSet(t *testing.T) {
	s := newSeenSet(3)
	now := testNow
	if !s.add("a", now.Add(time.Minute), now) || s.add("a", now.Add(time.Minute), now) {
		t.Fatal("replay not detected")
	}
	if !s.add("a", now.Add(2*time.Minute), now.Add(time.Minute)) {
		t.Fatal("expired entry still blocks")
	}
	for i := range 10 {
		s.add(strconv.Itoa(i), now.Add(time.Duration(i+5)*time.Minute), now)
		if len(s.m) > 3 {
			t.Fatalf("set grew to %d", len(s.m))
		}
	}
	if s.add("9", now.Add(time.Hour), now) {
		t.Fatal("latest entry evicted")
	}
}

// FuzzStateDecode: decode never panics and accepts nothing but the exact
// cookies the codec produced (with the same key and source name).
func FuzzStateDecode(f *testing.F) {
	c := mustCodec(f, "idp")
	valid := map[string]loginState{}
	// Fixed GCM nonces: fuzz workers rebuild this map and must get the same
	// cookies as the process that registered the seeds.
	for i, st := range []loginState{sampleState, {State: "a", Nonce: "b", Verifier: "c", IssuedAt: testNow.Unix()}} {
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
