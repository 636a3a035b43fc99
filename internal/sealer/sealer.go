// Package sealer encrypts small secrets (cached Rocket.Chat tokens) for
// storage with AES-256-GCM. A sealed value is
//
//	version(1)=0x01 | key id(4) | nonce(12) | ciphertext+tag
//
// and is bound to an associated-data string (the subject), so a ciphertext
// copied onto another row does not open. The key id is the first 4 bytes of
// SHA-256(key): rotating keys means opening with the old key (Open tries every
// key given) and sealing with the first.
package sealer

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// ErrOpen means a sealed value could not be opened: wrong key, wrong
// associated data, or tampering. It carries no detail on purpose.
var ErrOpen = errors.New("sealer: cannot open sealed value")

const version = 1

type key struct {
	id   [4]byte
	aead cipher.AEAD
}

// Sealer seals with its first key and opens with any of its keys.
type Sealer struct{ keys []key }

// New returns a Sealer for one or more 32-byte keys; the first seals.
func New(keys ...[]byte) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("sealer: no key")
	}
	s := &Sealer{}
	for i, k := range keys {
		if len(k) != 32 {
			return nil, fmt.Errorf("sealer: key %d has %d bytes, want 32", i, len(k))
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(k)
		var id [4]byte
		copy(id[:], sum[:4])
		s.keys = append(s.keys, key{id: id, aead: aead})
	}
	return s, nil
}

// Seal encrypts plaintext bound to ad.
func (s *Sealer) Seal(plaintext []byte, ad string) []byte {
	k := s.keys[0]
	out := make([]byte, 0, 1+4+12+len(plaintext)+16)
	out = append(out, version)
	out = append(out, k.id[:]...)
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plaintext, []byte(ad))
}

// Open decrypts a value from Seal; ErrOpen on any failure.
func (s *Sealer) Open(sealed []byte, ad string) ([]byte, error) {
	if len(sealed) < 1+4+12+16 || sealed[0] != version {
		return nil, ErrOpen
	}
	for _, k := range s.keys {
		if [4]byte(sealed[1:5]) != k.id {
			continue
		}
		pt, err := k.aead.Open(nil, sealed[5:17], sealed[17:], []byte(ad))
		if err != nil {
			return nil, ErrOpen
		}
		return pt, nil
	}
	return nil, ErrOpen
}
