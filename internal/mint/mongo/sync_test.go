package mongo

import (
	"testing"

	"github.com/rcsso/rcsso/internal/mint"
)

var _ mint.ProfileSyncer = (*Provisioner)(nil)

func TestProfileSync(t *testing.T) {
	u := newUsers(t)
	p := newProv(t, u, nil)
	id := jane()
	l, err := p.Ensure(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if done, err := p.Sync(t.Context(), id); !done || err != nil {
		t.Fatalf("unchanged profile: %v %v", done, err)
	}
	before := doc(t, u, l.UserID).Lookup("_updatedAt")
	id.Name, id.Email, id.Roles = "Jane Q. Doe", "jane.doe@example.com", []string{"moderator"}
	if done, err := p.Sync(t.Context(), id); !done || err != nil {
		t.Fatalf("sync: %v %v", done, err)
	}
	d := doc(t, u, l.UserID)
	if name := d.Lookup("name").StringValue(); name != "Jane Q. Doe" {
		t.Fatalf("name %q", name)
	}
	if addr := d.Lookup("emails", "0", "address").StringValue(); addr != "jane.doe@example.com" {
		t.Fatalf("email %q", addr)
	}
	var roles []string
	vals, _ := d.Lookup("roles").Array().Values()
	for _, v := range vals {
		roles = append(roles, v.StringValue())
	}
	if len(roles) != 2 || roles[0] != "moderator" || roles[1] != "user" {
		t.Fatalf("roles %v", roles)
	}
	if d.Lookup("_updatedAt").Equal(before) {
		t.Fatal("_updatedAt not bumped")
	}
	// Nothing changed since: no write.
	after := d.Lookup("_updatedAt")
	if done, _ := p.Sync(t.Context(), id); !done || !doc(t, u, l.UserID).Lookup("_updatedAt").Equal(after) {
		t.Fatal("wrote again although nothing changed")
	}
}
