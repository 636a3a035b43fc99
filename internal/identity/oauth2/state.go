package oauth2

import (
	"errors"
	"fmt"
	"time"

	"github.com/rcsso/rcsso/internal/identity/flowstate"
)

// StateTTL is how long a login may take between the login route and the
// callback: the lifetime of the encrypted state cookie and of the record
// that makes its state single-use.
const StateTTL = 10 * time.Minute

// Limits on the state cookie.
const (
	maxReturnTo    = flowstate.MaxReturnTo // bytes of a return_to kept in the cookie
	maxStateCookie = flowstate.MaxCookie   // bytes of an encoded cookie value accepted
	stateClockSkew = flowstate.ClockSkew
)

// errState is wrapped by every state cookie decoding failure.
var errState = errors.New("oauth2: invalid or expired login state")

// loginState is what the login route remembers for the callback. It
// travels only inside the AES-GCM sealed cookie, so the PKCE verifier never
// reaches the provider before the token request.
type loginState struct {
	State    string `json:"s"`
	Verifier string `json:"v"`
	ReturnTo string `json:"r,omitempty"`
	IssuedAt int64  `json:"t"` // Unix seconds
}

// stateCodec seals loginState values into the state cookie (package
// flowstate, format "rcsso-oauth2-state/v1").
type stateCodec struct{ *flowstate.Codec[loginState] }

func newStateCodec(key []byte, name string) (*stateCodec, error) {
	c, err := flowstate.New[loginState](key, "rcsso-oauth2-state/v1", name)
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
	if st.State == "" || st.Verifier == "" {
		return loginState{}, fmt.Errorf("%w: incomplete", errState)
	}
	if !flowstate.Fresh(st.IssuedAt, now, StateTTL) {
		return loginState{}, fmt.Errorf("%w: expired", errState)
	}
	return st, nil
}
