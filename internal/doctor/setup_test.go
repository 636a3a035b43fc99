package doctor

import (
	"strings"
	"testing"

	"github.com/rcsso/rcsso/internal/rocketchat"
)

// The role that receives the service account's permissions: its own
// custom role, else bot (with a warning), never a role every user holds.
func TestChooseRole(t *testing.T) {
	roles := []rocketchat.Role{{ID: "admin", Name: "admin", Scope: "Users", Protected: true}, {ID: "user", Name: "user", Scope: "Users", Protected: true},
		{ID: "bot", Name: "bot", Scope: "Users", Protected: true}, {ID: "owner", Name: "owner", Scope: "Subscriptions", Protected: true},
		{ID: "k3Rr9", Name: "chat-bridge", Scope: "Users"}, {ID: "room1", Name: "room-mod", Scope: "Subscriptions"}}
	for _, c := range []struct {
		named string
		mine  []string
		want  string
		warn  string
		err   string
	}{
		{"", []string{"user", "k3Rr9"}, "k3Rr9", "", ""},
		{"", []string{"user", "bot"}, "bot", "every bot gets it", ""},
		{"", []string{"user", "room1"}, "", "has no role of its own", ""},
		{"", []string{"user"}, "", "has no role of its own", ""},
		{"chat-bridge", []string{"user"}, "k3Rr9", "does not hold role chat-bridge", ""},
		{"k3Rr9", []string{"k3Rr9"}, "k3Rr9", "", ""},
		{"user", []string{"user"}, "", "", "every user holds that role"},
		{"anonymous", nil, "", "", "no such role"},
		{"nope", nil, "", "", "no such role"},
	} {
		id, warn, err := chooseRole(c.named, rocketchat.User{Username: "svc", Roles: c.mine}, roles)
		if id != c.want || !strings.Contains(warn, c.warn) || (c.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("%q %v: %q %q %v", c.named, c.mine, id, warn, err)
		}
	}
}

func TestMergeOrigins(t *testing.T) {
	for _, c := range []struct{ cur, want string }{
		{"*", "https://a.test"},
		{"", "https://a.test"},
		{"https://b.test, https://a.test", "https://b.test,https://a.test"},
		{"https://b.test,,*,https://b.test", "https://b.test,https://a.test"},
	} {
		if got := mergeOrigins(c.cur, []string{"https://a.test"}); got != c.want {
			t.Errorf("%q: %q, want %q", c.cur, got, c.want)
		}
	}
}
