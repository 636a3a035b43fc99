package oidc

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rcsso/rcsso/internal/identity/flowstate"
)

// StateTTL is how long a login may take between the login route and the
// callback: the lifetime of the encrypted state cookie.
const StateTTL = 10 * time.Minute

// Limits on the state cookie.
const (
	maxReturnTo    = flowstate.MaxReturnTo // bytes of a return_to kept in the cookie
	maxStateCookie = flowstate.MaxCookie   // bytes of an encoded cookie value accepted
	stateClockSkew = flowstate.ClockSkew
)

// errState is wrapped by every state cookie decoding failure.
var errState = errors.New("oidc: invalid or expired login state")

// loginState is what the login route remembers for the callback. It travels
// only inside the AES-GCM sealed cookie.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	ReturnTo string `json:"r,omitempty"`
	IssuedAt int64  `json:"t"` // Unix seconds
}

// stateCodec seals loginState values into the state cookie (package
// flowstate, format "rcsso-oidc-state/v1").
type stateCodec struct{ *flowstate.Codec[loginState] }

func newStateCodec(key []byte, name string) (*stateCodec, error) {
	c, err := flowstate.New[loginState](key, "rcsso-oidc-state/v1", name)
	if err != nil {
		return nil, err
	}
	return &stateCodec{c}, nil
}

func (c *stateCodec) encode(st loginState) (string, error) { return c.Seal(st) }

// seal is encode under a fixed nonce (tests only; see flowstate.SealNonce).
func (c *stateCodec) seal(st loginState, nonce []byte) (string, error) { return c.SealNonce(st, nonce) }

// decode opens a cookie value and checks its fields and its age against
// now. Every failure wraps errState; it never panics on any input.
func (c *stateCodec) decode(v string, now time.Time) (loginState, error) {
	st, err := c.Open(v)
	if err != nil {
		return loginState{}, fmt.Errorf("%w (%w)", errState, err)
	}
	if st.State == "" || st.Nonce == "" || st.Verifier == "" {
		return loginState{}, fmt.Errorf("%w: incomplete", errState)
	}
	if !flowstate.Fresh(st.IssuedAt, now, StateTTL) {
		return loginState{}, fmt.Errorf("%w: expired", errState)
	}
	return st, nil
}

// seenSet remembers single-use values (consumed login states, logout token
// jti) until they expire. It holds at most max entries: when full it drops
// expired entries, then the one expiring first. Safe for concurrent use.
type seenSet struct {
	mu    sync.Mutex
	limit int
	m     map[string]time.Time
}

func newSeenSet(limit int) *seenSet {
	return &seenSet{limit: limit, m: make(map[string]time.Time)}
}

// add records key until exp and reports whether it was new (not already
// recorded and unexpired at now).
func (s *seenSet) add(key string, exp, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && now.Before(e) {
		return false
	}
	if len(s.m) >= s.limit {
		var oldKey string
		var oldExp time.Time
		for k, e := range s.m {
			if !now.Before(e) {
				delete(s.m, k)
				continue
			}
			if oldKey == "" || e.Before(oldExp) {
				oldKey, oldExp = k, e
			}
		}
		if len(s.m) >= s.limit {
			delete(s.m, oldKey)
		}
	}
	s.m[key] = exp
	return true
}

// remove forgets key (so a failed logout may be retried).
func (s *seenSet) remove(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}
