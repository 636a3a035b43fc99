package local

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/websession"
)

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !VerifyPassword(h, "correct horse") || VerifyPassword(h, "correct horsE") {
		t.Fatal("verification wrong")
	}
	for _, bad := range []string{"", "$argon2id$", h[:len(h)-4] + "$x", "$argon2i$v=19$m=1,t=1,p=1$AA$AA"} {
		if VerifyPassword(bad, "correct horse") {
			t.Fatalf("malformed hash %q verified", bad)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	ctx := context.Background()
	st := memory.New()
	a, err := NewAccount("Alice", "password123", "Alice A", "alice@example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateAccount(ctx, a); err != nil {
		t.Fatal(err)
	}
	src := New("", st, websession.New(st, websession.Options{CookieName: "s", TTL: time.Hour}))
	id, err := src.Authenticate(ctx, " alice ", "password123")
	if err != nil || id.Subject != "local:alice" || id.Email != "alice@example.com" {
		t.Fatalf("got %+v, %v", id, err)
	}
	for _, c := range [][2]string{{"alice", "wrong-password"}, {"nobody", "password123"}, {"", ""}} {
		if _, err := src.Authenticate(ctx, c[0], c[1]); !errors.Is(err, identity.ErrBadCredentials) {
			t.Errorf("Authenticate(%q) = %v, want ErrBadCredentials", c[0], err)
		}
	}
	if _, err := NewAccount("bob", "short", "", "", time.Now()); err == nil {
		t.Error("short password accepted")
	}
}
