package identity

import "testing"

func TestPolicy(t *testing.T) {
	p := Policy{Groups: []string{"staff"}, Roles: []string{"moderator"}, EmailDomains: []string{"Example.com"}}
	for _, c := range []struct {
		name string
		id   Identity
		want bool
	}{
		{"in a group", Identity{Groups: []string{"sales", "staff"}}, true},
		{"holds a role", Identity{Roles: []string{"moderator"}}, true},
		{"verified address in the domain", Identity{Email: "a@example.COM", EmailVerified: true}, true},
		{"unverified address in the domain", Identity{Email: "a@example.com"}, false},
		{"subdomain", Identity{Email: "a@mail.example.com", EmailVerified: true}, false},
		{"look-alike domain", Identity{Email: "a@example.com.evil.test", EmailVerified: true}, false},
		{"group of another case", Identity{Groups: []string{"Staff"}}, false},
		{"nothing", Identity{}, false},
	} {
		if got := p.Allows(c.id); got != c.want {
			t.Errorf("%s: Allows = %v, want %v", c.name, got, c.want)
		}
	}
	if !(Policy{}).Allows(Identity{}) {
		t.Fatal("an empty policy must allow everybody")
	}
}
