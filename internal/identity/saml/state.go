package saml

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// StateTTL is how long an SP-initiated login may take between the login
// route and the IdP's response at the ACS: the lifetime of the sealed
// state cookie.
const StateTTL = 10 * time.Minute

// Limits on the state cookie.
const (
	maxReturnTo    = 2048 // bytes of a return_to kept in the cookie
	maxStateCookie = 4096 // bytes of an encoded cookie value accepted
	stateClockSkew = time.Minute
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

// stateCodec seals loginState values with AES-256-GCM. The additional data
// binds a cookie to its format version and source name, so one source's
// cookie is useless to another source sharing the key.
type stateCodec struct {
	aead cipher.AEAD
	ad   []byte
}

func newStateCodec(key []byte, name string) (*stateCodec, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("state key has %d bytes, want 32", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &stateCodec{aead: aead, ad: []byte("rcsso-saml-state/v1\x00" + name)}, nil
}

// encode returns base64url(nonce ‖ ciphertext ‖ tag), without padding.
func (c *stateCodec) encode(st loginState) (string, error) {
	plain, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, c.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(c.aead.Seal(nonce, nonce, plain, c.ad)), nil
}

// decode opens a cookie value and checks its age against now. Every
// failure wraps errState; it never panics on any input.
func (c *stateCodec) decode(v string, now time.Time) (loginState, error) {
	if len(v) == 0 || len(v) > maxStateCookie {
		return loginState{}, fmt.Errorf("%w: bad length", errState)
	}
	for i := 0; i < len(v); i++ { // the decoder would skip \r and \n
		b := v[i]
		if !('A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-' || b == '_') {
			return loginState{}, fmt.Errorf("%w: bad encoding", errState)
		}
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(v)
	if err != nil {
		return loginState{}, fmt.Errorf("%w: bad encoding", errState)
	}
	ns := c.aead.NonceSize()
	if len(raw) < ns+c.aead.Overhead() {
		return loginState{}, fmt.Errorf("%w: too short", errState)
	}
	plain, err := c.aead.Open(nil, raw[:ns], raw[ns:], c.ad)
	if err != nil {
		return loginState{}, fmt.Errorf("%w: authentication failed", errState)
	}
	var st loginState
	if err := json.Unmarshal(plain, &st); err != nil {
		return loginState{}, fmt.Errorf("%w: bad payload", errState)
	}
	if st.State == "" || st.RequestID == "" {
		return loginState{}, fmt.Errorf("%w: incomplete", errState)
	}
	issued := time.Unix(st.IssuedAt, 0)
	if now.Sub(issued) > StateTTL || issued.Sub(now) > stateClockSkew {
		return loginState{}, fmt.Errorf("%w: expired", errState)
	}
	return st, nil
}
