package config

import (
	"reflect"
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

// provisioning.rooms, a list of blocks like identity, is set from the
// environment as one YAML or JSON value; a malformed one names the
// variable and shows the shape.
func TestProvisioningRoomsFromEnvironment(t *testing.T) {
	env := []string{"RCSSO_ROCKETCHAT_ADMIN_USERNAME=a", "RCSSO_ROCKETCHAT_ADMIN_PASSWORD=b",
		`RCSSO_PROVISIONING_ROOMS=[{"group":"sales","channels":["sales"],"teams":["Sales EU"]}]`}
	cfg, err := Load("", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if r := cfg.Provision.Rooms; len(r) != 1 || r[0].Group != "sales" || r[0].Channels[0] != "sales" || r[0].Teams[0] != "Sales EU" {
		t.Fatalf("rooms = %+v", r)
	}
	_, err = Load("", []string{`RCSSO_PROVISIONING_ROOMS={"group":`}, nil)
	if err == nil || !strings.Contains(err.Error(), "RCSSO_PROVISIONING_ROOMS") || !strings.Contains(err.Error(), `"group"`) {
		t.Fatalf("malformed RCSSO_PROVISIONING_ROOMS: %v", err)
	}
}

// Every list of blocks in Config can be set from the environment: a new one
// without an envLists row would be YAML only, silently.
func TestEveryListOfBlocksHasAnEnvironmentVariable(t *testing.T) {
	have := map[string]bool{}
	for _, l := range envLists {
		have[l.path] = true
	}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, prefix string) {
		for f := range typ.Fields() {
			tag := f.Tag.Get("koanf")
			if tag == "" || tag == ",remain" {
				continue
			}
			p := tag
			if prefix != "" {
				p = prefix + "." + tag
			}
			switch {
			case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
				if !have[p] {
					t.Errorf("%s is a list of blocks with no row in envLists: it cannot be set from the environment", p)
				}
			case f.Type.Kind() == reflect.Struct:
				walk(f.Type, p)
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
}
