package config

import (
	"strings"
	"testing"
)

const roomsAdmin = "rocketchat:\n  admin_username: a\n  admin_password: b\n"

func TestProvisioningRooms(t *testing.T) {
	cfg, err := Load(writeFile(t, "c.yaml", roomsAdmin+`
provisioning:
  rooms:
    - group: sales
      channels: [sales, general]
      private_groups: [sales-leads]
      teams: [Sales EU]
    - group: cn=support,ou=groups,dc=example,dc=org
      channels: support
`), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	r := cfg.Provision.Rooms
	if len(r) != 2 || r[0].Group != "sales" || len(r[0].Channels) != 2 || r[0].PrivateGroups[0] != "sales-leads" ||
		r[0].Teams[0] != "Sales EU" || r[1].Channels[0] != "support" {
		t.Fatalf("rooms = %+v", r)
	}
}

// Every mistake in provisioning.rooms is named by its key, with the fix.
func TestProvisioningRoomsErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"no group", roomsAdmin + "provisioning:\n  rooms:\n    - channels: [sales]\n", "config: provisioning.rooms[0].group: name the identity group"},
		{"no rooms", roomsAdmin + "provisioning:\n  rooms:\n    - group: sales\n", "config: provisioning.rooms[0]: give the group at least one of channels"},
		{"hash", roomsAdmin + "provisioning:\n  rooms:\n    - group: sales\n      channels: ['#sales']\n",
			`config: provisioning.rooms[0].channels[0]: "#sales": write the name without "#", e.g. sales`},
		{"empty name", roomsAdmin + "provisioning:\n  rooms:\n    - group: sales\n      teams: ['']\n", "config: provisioning.rooms[0].teams[0]"},
		{"spaces", roomsAdmin + "provisioning:\n  rooms:\n    - group: sales\n      private_groups: [' leads']\n", "config: provisioning.rooms[0].private_groups[0]"},
		{"control character", roomsAdmin + "provisioning:\n  rooms:\n    - group: sales\n      channels: [\"a\\nb\"]\n", "no control characters"},
		{"unknown key", roomsAdmin + "provisioning:\n  rooms:\n    - group: sales\n      channel: [sales]\n", "channel: unknown key"},
		{"no service account", "provisioning:\n  rooms:\n    - group: sales\n      channels: [sales]\n", "config: provisioning.rooms: rcsso adds people to rooms as its Rocket.Chat service account"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Load(writeFile(t, "c.yaml", c.yaml), nil, nil)
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
