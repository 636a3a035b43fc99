package rcemu

import (
	"slices"
	"testing"
)

// permissions.listAll and roles.list answer like Rocket.Chat 6.x–9.0
// (user-management.yaml): permissions with their role _ids, roles with
// _id, name, scope and protected.
func TestPermissionsAndRolesLists(t *testing.T) {
	s, ts := newTestServer(t, Config{DisableRateLimit: true})
	admin := adminClient(t, s, ts)
	r := admin.get("/api/v1/permissions.listAll").wantStatus(t, 200)
	if r.field("success") != true || r.field("remove") == nil {
		t.Fatalf("permissions.listAll = %s", r.raw)
	}
	perms := map[string][]any{}
	for _, p := range r.field("update").([]any) {
		m := p.(map[string]any)
		if m["_updatedAt"] == nil {
			t.Fatalf("permission without _updatedAt: %v", m)
		}
		perms[m["_id"].(string)] = m["roles"].([]any)
	}
	if !slices.Equal(perms["create-user"], []any{"admin"}) || !slices.Contains(perms["api-bypass-rate-limit"], any("bot")) ||
		slices.Contains(perms["edit-other-user-info"], any("bot")) {
		t.Fatalf("default permissions: create-user %v, api-bypass-rate-limit %v, edit-other-user-info %v",
			perms["create-user"], perms["api-bypass-rate-limit"], perms["edit-other-user-info"])
	}
	admin.get("/api/v1/permissions.listAll?updatedSince=yesterday").wantStatus(t, 400).wantBody(t,
		`{"success":false,"error":"The \"updatedSince\" query parameter must be a valid date. [error-roomId-param-invalid]","errorType":"error-roomId-param-invalid"}`)

	id, err := s.AddRole("rcsso-service", "create-user", "edit-other-user-info")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddRole("rcsso-service"); err == nil {
		t.Fatal("a second role of the same name was created")
	}
	r = admin.get("/api/v1/roles.list").wantStatus(t, 200)
	var custom, bot map[string]any
	for _, x := range r.field("roles").([]any) {
		m := x.(map[string]any)
		switch m["name"] {
		case "rcsso-service":
			custom = m
		case "bot":
			bot = m
		}
	}
	if custom == nil || custom["_id"] != id || custom["protected"] != false || custom["scope"] != "Users" ||
		bot == nil || bot["_id"] != "bot" || bot["protected"] != true {
		t.Fatalf("roles.list = %s", r.raw)
	}
	r = admin.get("/api/v1/permissions.listAll?updatedSince=2000-01-01T00:00:00.000Z").wantStatus(t, 200)
	found := false
	for _, p := range r.field("update").([]any) {
		m := p.(map[string]any)
		found = found || m["_id"] == "create-user" && slices.Contains(m["roles"].([]any), any(id))
	}
	if !found {
		t.Fatalf("create-user does not list the custom role's _id %s: %s", id, r.raw)
	}
	newClient(t, ts).get("/api/v1/roles.list").wantStatus(t, 401)
	newClient(t, ts).get("/api/v1/permissions.listAll").wantStatus(t, 401)
}

// A service account with only the bot role cannot create users (the
// refusal every first visit met in issue 9); a custom role holding
// create-user can; users.info and /me report roles by _id.
func TestServiceAccountRoles(t *testing.T) {
	s, ts := newTestServer(t, Config{DisableRateLimit: true})
	body := map[string]any{"username": "newbie", "email": "newbie@example.com", "password": "pw", "name": "Newbie"}
	botID, err := s.AddUser(NewUser{Username: "svc", Name: "svc", Roles: []string{"bot"}, PAT: "svc-pat"})
	if err != nil {
		t.Fatal(err)
	}
	bot := newClient(t, ts).as(botID, "svc-pat")
	bot.post("/api/v1/users.create", body).wantStatus(t, 400).wantBody(t,
		`{"success":false,"error":"Adding user is not allowed [error-action-not-allowed]","errorType":"error-action-not-allowed","details":{"method":"insertOrUpdateUser","action":"Adding_user"}}`)
	id, err := s.AddRole("chat-provisioner", "create-user")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetUserRoles(botID, "bot", "chat-provisioner"); err != nil {
		t.Fatal(err)
	}
	bot.post("/api/v1/users.create", body).wantStatus(t, 200)
	if r := bot.get("/api/v1/me").wantStatus(t, 200); !slices.Equal(r.field("roles").([]any), []any{"bot", id}) {
		t.Fatalf("me roles = %v", r.field("roles"))
	}
	if err := s.SetUserRoles(botID, "wizard"); err == nil {
		t.Fatal("an unknown role was accepted")
	}
	// users.create accepts the custom role's _id, not an unknown one.
	admin := adminClient(t, s, ts)
	admin.post("/api/v1/users.create", map[string]any{"username": "x2", "email": "x2@example.com", "password": "pw", "name": "X", "roles": []string{id}}).wantStatus(t, 200)
}

// 9.0 answers the refusals #43214 maps with 403 errorType error-forbidden
// and keeps the original code only in error; 8.x answered 400 with the
// code as errorType. error-action-not-allowed stays 400 on both.
func TestRefusalsBecome403ErrorForbiddenOn9(t *testing.T) {
	for _, tc := range []struct {
		profile        string
		avatar, active string
		avatarStatus   int
	}{
		{"8.x", `{"success":false,"error":"Change avatar is not allowed [error-not-allowed]","errorType":"error-not-allowed","details":{"method":"users.setAvatar"}}`,
			`{"success":false,"error":"Not allowed [error-not-allowed]","errorType":"error-not-allowed","details":{"method":"setUserActiveStatus"}}`, 400},
		{"9.0", `{"success":false,"error":"Change avatar is not allowed [error-not-allowed]","errorType":"error-forbidden"}`,
			`{"success":false,"error":"Not allowed [error-not-allowed]","errorType":"error-forbidden"}`, 403},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			s, ts := newTestServer(t, Config{Profile: tc.profile, DisableRateLimit: true})
			id, err := s.AddRole("editor", "edit-other-user-info")
			if err != nil {
				t.Fatal(err)
			}
			svc, err := s.AddUser(NewUser{Username: "svc", Name: "svc", Roles: []string{"bot", id}, PAT: "svc-pat"})
			if err != nil {
				t.Fatal(err)
			}
			as := newClient(t, ts).as(svc, "svc-pat")
			as.post("/api/v1/users.setAvatar", map[string]any{"userId": s.AdminID(), "avatarUrl": "https://example.com/a.png"}).
				wantStatus(t, tc.avatarStatus).wantBody(t, tc.avatar)
			as.post("/api/v1/users.update", map[string]any{"userId": s.AdminID(), "data": map[string]any{"active": true}}).
				wantStatus(t, tc.avatarStatus).wantBody(t, tc.active)
			as.post("/api/v1/users.create", map[string]any{"username": "n", "email": "n@example.com", "password": "pw", "name": "N"}).
				wantStatus(t, 400)
		})
	}
}
