package password_test

import (
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/rcemu"
)

type rcemuServer = rcemu.Server

func newEmu(t *testing.T, twoFactor bool) *rcemu.Server {
	t.Helper()
	emu, err := rcemu.New(rcemu.Config{AdminPassword: "pw", AdminPAT: "pat", BcryptCost: bcrypt.MinCost, TwoFactor: twoFactor})
	if err != nil {
		t.Fatal(err)
	}
	return emu
}
