package rcemu

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// openAPIDoc is the part of an OpenAPI document the checks read.
type openAPIDoc struct {
	Paths      map[string]map[string]openAPIOp `yaml:"paths"`
	Components struct {
		Responses map[string]openAPIResponse `yaml:"responses"`
	} `yaml:"components"`
}

type openAPIOp struct {
	Responses map[string]openAPIResponse `yaml:"responses"`
}

type openAPIResponse struct {
	Ref     string `yaml:"$ref"`
	Content map[string]struct {
		Schema struct {
			Properties map[string]any `yaml:"properties"`
		} `yaml:"schema"`
	} `yaml:"content"`
}

// TestRoomRoutesFollowOpenAPI checks every room and team route against
// Rocket.Chat's OpenAPI excerpt (openapi/rooms.yaml): the path and method
// exist, and a successful answer carries only the fields the 200
// response declares.
func TestRoomRoutesFollowOpenAPI(t *testing.T) {
	raw, err := os.ReadFile("openapi/rooms.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPIDoc
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	f := newRoomFixture(t, "8.x")
	calls := map[string]func() resp{
		"channels.info": func() resp { return f.admin.get("/api/v1/channels.info?roomId=" + f.sales) },
		"channels.invite": func() resp {
			return f.admin.post("/api/v1/channels.invite", map[string]any{"roomId": f.sales, "userId": f.bobID})
		},
		"channels.members": func() resp { return f.admin.get("/api/v1/channels.members?roomId=" + f.sales) },
		"channels.kick": func() resp {
			return f.admin.post("/api/v1/channels.kick", map[string]any{"roomId": f.sales, "userId": f.bobID})
		},
		"groups.info": func() resp { return f.admin.get("/api/v1/groups.info?roomId=" + f.leads) },
		"groups.invite": func() resp {
			return f.admin.post("/api/v1/groups.invite", map[string]any{"roomId": f.leads, "userId": f.bobID})
		},
		"groups.members": func() resp { return f.admin.get("/api/v1/groups.members?roomId=" + f.leads) },
		"groups.kick": func() resp {
			return f.admin.post("/api/v1/groups.kick", map[string]any{"roomId": f.leads, "userId": f.bobID})
		},
		"teams.info": func() resp { return f.admin.get("/api/v1/teams.info?teamId=" + f.teamID) },
		"teams.addMembers": func() resp {
			return f.admin.post("/api/v1/teams.addMembers", map[string]any{"teamId": f.teamID, "members": []any{map[string]any{"userId": f.bobID}}})
		},
		"teams.members": func() resp { return f.admin.get("/api/v1/teams.members?teamId=" + f.teamID) },
		"teams.removeMember": func() resp {
			return f.admin.post("/api/v1/teams.removeMember", map[string]any{"teamId": f.teamID, "userId": f.bobID})
		},
	}
	order := []string{"channels.info", "channels.invite", "channels.members", "channels.kick", "groups.info", "groups.invite",
		"groups.members", "groups.kick", "teams.info", "teams.addMembers", "teams.members", "teams.removeMember"}
	routes := f.s.roomRoutes()
	if len(routes) != len(order) {
		t.Fatalf("%d room routes, %d checked", len(routes), len(order))
	}
	for _, name := range order {
		rt := routes[name]
		if rt == nil {
			t.Fatalf("no route %s", name)
		}
		item, ok := doc.Paths["/api/v1/"+name]
		if !ok {
			t.Fatalf("%s is not in openapi/rooms.yaml", name)
		}
		for method := range rt.methods {
			op, ok := item[strings.ToLower(method)]
			if !ok {
				t.Fatalf("%s %s is not in openapi/rooms.yaml", method, name)
			}
			ok200 := op.Responses["200"]
			if ref, found := strings.CutPrefix(ok200.Ref, "#/components/responses/"); found {
				ok200 = doc.Components.Responses[ref]
			}
			declared := ok200.Content["application/json"].Schema.Properties
			r := calls[name]().wantStatus(t, http.StatusOK)
			for k := range r.body {
				if _, ok := declared[k]; !ok {
					keys := make([]string, 0, len(declared))
					for d := range declared {
						keys = append(keys, d)
					}
					slices.Sort(keys)
					t.Errorf("%s answers field %q; the OpenAPI 200 response declares %v", name, k, keys)
				}
			}
		}
	}
}
