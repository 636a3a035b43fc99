package saml

import (
	"errors"
	"fmt"
	"time"

	"github.com/rcsso/rcsso/internal/identity/flowstate"
)

// StateTTL is how long an SP-initiated login may take between the login
// route and the IdP's response at the ACS: the lifetime of the sealed
// state cookie.
const StateTTL = 10 * time.Minute

// Limits on the state cookie.
const (
	maxReturnTo    = flowstate.MaxReturnTo // bytes of a return_to kept in the cookie
	maxStateCookie = flowstate.MaxCookie   // bytes of an encoded cookie value accepted
	stateClockSkew = flowstate.ClockSkew
)

// errState is wrapped by every state cookie decoding failure.
var errState = errors.New("saml: invalid or expired login state")

// loginState is what the login route remembers for the ACS. It travels
// only inside the AES-GCM sealed cookie; the RelayState sent through the
// IdP is State alone (the bindings allow 80 bytes of RelayState).
type loginState struct {
	State     string `json:"s"`           // the RelayState sent with the AuthnRequest
	RequestID string `json:"i"`           // the AuthnRequest's ID: the response's InResponseTo
	ReturnTo  string `json:"r,omitempty"` // filtered by SafeReturnTo
	IssuedAt  int64  `json:"t"`           // Unix seconds
}

// stateCodec seals loginState values into the state cookie (package
// flowstate, format "rcsso-saml-state/v1").
type stateCodec struct{ *flowstate.Codec[loginState] }

func newStateCodec(key []byte, name string) (*stateCodec, error) {
	c, err := flowstate.New[loginState](key, "rcsso-saml-state/v1", name)
	if err != nil {
		return nil, err
	}
	return &stateCodec{c}, nil
}

func (c *stateCodec) encode(st loginState) (string, error) { return c.Seal(st) }

// decode opens a cookie value and checks its fields and its age against
// now. Every failure wraps errState; it never panics on any input.
func (c *stateCodec) decode(v string, now time.Time) (loginState, error) {
	st, err := c.Open(v)
	if err != nil {
		return loginState{}, fmt.Errorf("%w (%w)", errState, err)
	}
	if st.State == "" || st.RequestID == "" {
		return loginState{}, fmt.Errorf("%w: incomplete", errState)
	}
	if !flowstate.Fresh(st.IssuedAt, now, StateTTL) {
		return loginState{}, fmt.Errorf("%w: expired", errState)
	}
	return st, nil
}
