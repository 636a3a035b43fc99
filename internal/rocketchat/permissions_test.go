package rocketchat

import (
	"context"
	"net/http"
	"slices"
	"testing"
)

func TestPermissionsRolesOAuthServices(t *testing.T) {
	c, ts := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		switch r.URL.Path {
		case "/api/v1/permissions.listAll":
			_, _ = w.Write([]byte(`{"update":[{"_id":"create-user","_updatedAt":"2026-01-01T00:00:00.000Z","roles":["admin","k3Rr9Xc2"]},{"_id":"","roles":["x"]}],"remove":[],"success":true}`))
		case "/api/v1/roles.list":
			_, _ = w.Write([]byte(`{"roles":[{"_id":"admin","name":"admin","scope":"Users","protected":true},{"_id":"k3Rr9Xc2","name":"provisioner","scope":"Users","protected":false},{"_id":"old"}],"success":true}`))
		case "/api/v1/settings.oauth":
			_, _ = w.Write([]byte(`{"services":[{"_id":"a","name":"google","clientId":"x","custom":false},{"_id":"b","service":"rcsso","custom":true,"serverURL":"https://sso.example.com","identityPath":"/oauth/identity"}],"success":true}`))
		}
	})
	ctx := context.Background()
	perms, err := c.Permissions(ctx, admin)
	if err != nil || !slices.Equal(perms["create-user"], []string{"admin", "k3Rr9Xc2"}) || len(perms) != 1 {
		t.Fatalf("Permissions = %v, %v", perms, err)
	}
	if r := ts.last(t); r.Header.Get("X-User-Id") != admin.UserID || r.Header.Get("X-Auth-Token") != admin.AuthToken {
		t.Fatalf("permissions.listAll sent without credentials")
	}
	roles, err := c.Roles(ctx, admin)
	if err != nil || len(roles) != 3 || roles[1].DisplayName() != "provisioner" || roles[2].DisplayName() != "old" || !roles[0].Protected {
		t.Fatalf("Roles = %+v, %v", roles, err)
	}
	svcs, err := c.OAuthServices(ctx)
	if err != nil || len(svcs) != 2 || svcs[0].Key() != "google" || svcs[1].Key() != "rcsso" || !svcs[1].Custom || svcs[1].IdentityPath != "/oauth/identity" {
		t.Fatalf("OAuthServices = %+v, %v", svcs, err)
	}
	checkNoAuthHeaders(t, ts.last(t))
}

// Hostile or foreign answers are errors, never panics or silent empties.
func TestPermissionsHostileAnswers(t *testing.T) {
	for _, body := range []string{`{"success":true}`, `{"update":"x","success":true}`, `{"update":[{"_id":1}]}`, `[]`, `null`,
		`{"roles":{"a":1},"services":7,"update":[{"roles":[1,2]}]}`} {
		c, _ := newServer(t, static(200, body))
		ctx := context.Background()
		if _, err := c.Permissions(ctx, admin); err == nil {
			t.Errorf("Permissions accepted %s", body)
		}
		if _, err := c.Roles(ctx, admin); err == nil {
			t.Errorf("Roles accepted %s", body)
		}
		if _, err := c.OAuthServices(ctx); err == nil {
			t.Errorf("OAuthServices accepted %s", body)
		}
	}
}
