package sealer

import (
	"bytes"
	"errors"
	"testing"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestSealOpen(t *testing.T) {
	s, err := New(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Seal([]byte("token-value"), "local:alice")
	if bytes.Contains(c, []byte("token-value")) {
		t.Fatal("plaintext visible in sealed value")
	}
	got, err := s.Open(c, "local:alice")
	if err != nil || string(got) != "token-value" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open(c, "local:bob"); !errors.Is(err, ErrOpen) {
		t.Fatal("opened with the wrong associated data")
	}
	c[len(c)-1] ^= 1
	if _, err := s.Open(c, "local:alice"); !errors.Is(err, ErrOpen) {
		t.Fatal("opened a tampered value")
	}
}

func TestRotation(t *testing.T) {
	old, _ := New(testKey(1))
	c := old.Seal([]byte("v"), "ad")
	rotated, _ := New(testKey(2), testKey(1))
	if got, err := rotated.Open(c, "ad"); err != nil || string(got) != "v" {
		t.Fatalf("rotated sealer cannot open old value: %v", err)
	}
	if _, err := old.Open(rotated.Seal([]byte("v"), "ad"), "ad"); !errors.Is(err, ErrOpen) {
		t.Fatal("old key opened a value sealed with the new key")
	}
	if _, err := New(make([]byte, 16)); err == nil {
		t.Fatal("short key accepted")
	}
}
