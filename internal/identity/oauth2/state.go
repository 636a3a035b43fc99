package oauth2

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

// StateTTL is how long a login may take between the login route and the
// callback: the lifetime of the encrypted state cookie and of the record
// that makes its state single-use.
const StateTTL = 10 * time.Minute

// Limits on the state cookie.
const (
	maxReturnTo    = 2048 // bytes of a return_to kept in the cookie
	maxStateCookie = 4096 // bytes of an encoded cookie value accepted
	stateClockSkew = time.Minute
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

// stateCodec seals loginState values with AES-256-GCM (the shape of the
// oidc source's cookie). The additional data binds a cookie to this format
// and to the source name, so one source's cookie is useless to another
// source sharing the key.
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
	return &stateCodec{aead: aead, ad: []byte("rcsso-oauth2-state/v1\x00" + name)}, nil
}

// encode returns base64url(nonce ‖ ciphertext ‖ tag), without padding.
func (c *stateCodec) encode(st loginState) (string, error) {
	nonce := make([]byte, c.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return c.seal(st, nonce)
}

// seal encrypts st under the given 12-byte GCM nonce, which must never
// repeat for a key; only encode (random nonces) and tests call it.
func (c *stateCodec) seal(st loginState, nonce []byte) (string, error) {
	plain, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	sealed := c.aead.Seal(nonce[:len(nonce):len(nonce)], nonce, plain, c.ad)
	return base64.RawURLEncoding.EncodeToString(sealed), nil
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
	if st.State == "" || st.Verifier == "" {
		return loginState{}, fmt.Errorf("%w: incomplete", errState)
	}
	issued := time.Unix(st.IssuedAt, 0)
	if now.Sub(issued) > StateTTL || issued.Sub(now) > stateClockSkew {
		return loginState{}, fmt.Errorf("%w: expired", errState)
	}
	return st, nil
}
