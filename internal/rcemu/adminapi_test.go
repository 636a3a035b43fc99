package rcemu

import (
	"encoding/base64"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// GET and POST /api/v1/settings/:_id behave like settings.ts: the route
// permissions view-privileged-setting / edit-privileged-setting, 400
// {"success":false} for unknown and hidden settings and for a body without
// value, values stored as sent, and POST's two-factor requirement.
func TestSettingByID(t *testing.T) {
	s, ts := newTestServer(t, Config{DisableRateLimit: true, TwoFactor: true})
	admin := adminClient(t, s, ts)
	admin.get("/api/v1/settings/Accounts_iframe_enabled").wantStatus(t, 200).
		wantBody(t, `{"_id":"Accounts_iframe_enabled","value":false,"success":true}`)
	admin.post("/api/v1/settings/Accounts_iframe_enabled", map[string]any{"value": true}).wantStatus(t, 200).wantBody(t, `{"success":true}`)
	admin.post("/api/v1/settings/Iframe_Integration_receive_origin", map[string]any{"value": "https://www.example.test"}).wantStatus(t, 200)
	r := newClient(t, ts).get("/api/v1/settings.public?_id=Accounts_iframe_enabled,Iframe_Integration_receive_origin").wantStatus(t, 200)
	if !strings.Contains(r.raw, `"value":true`) || !strings.Contains(r.raw, `"https://www.example.test"`) {
		t.Fatalf("settings.public after POST: %s", r.raw)
	}
	// Private settings too, and no type check: a string where a boolean was.
	admin.post("/api/v1/settings/Iframe_Restrict_Access", map[string]any{"value": "true"}).wantStatus(t, 200)
	admin.get("/api/v1/settings/Iframe_Restrict_Access").wantBody(t, `{"_id":"Iframe_Restrict_Access","value":"true","success":true}`)
	if res := newClient(t, ts).get("/api/info"); res.header.Get("X-Frame-Options") != "sameorigin" {
		t.Fatalf("Iframe_Restrict_Access \"true\": X-Frame-Options %q", res.header.Get("X-Frame-Options"))
	}

	for _, c := range []struct {
		name, path string
		body       any
	}{
		{"unknown setting", "/api/v1/settings/No_Such_Setting", map[string]any{"value": 1}},
		{"hidden setting", "/api/v1/settings/Accounts_SystemBlockedUsernameList", map[string]any{"value": ""}},
		{"no value", "/api/v1/settings/Accounts_iframe_enabled", map[string]any{"val": true}},
		{"empty body", "/api/v1/settings/Accounts_iframe_enabled", nil},
	} {
		if r := admin.post(c.path, c.body); r.status != 400 || r.raw != "{\"success\":false}\n" {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
		}
	}
	admin.get("/api/v1/settings/Accounts_SystemBlockedUsernameList").wantStatus(t, 400)
	if r := admin.get("/api/v1/settings/a/b"); r.status != 404 {
		t.Errorf("settings/a/b: %d %s", r.status, r.raw)
	}

	// A user without the permissions: the route-level 403.
	uid, err := s.AddUser(NewUser{Username: "plain", Password: "pw", PAT: "plain-pat"})
	if err != nil {
		t.Fatal(err)
	}
	plain := newClient(t, ts).as(uid, "plain-pat")
	plain.get("/api/v1/settings/Accounts_iframe_enabled").wantStatus(t, 403).
		wantBody(t, `{"success":false,"error":"User does not have the permissions required for this action [error-forbidden]"}`)
	plain.post("/api/v1/settings/Accounts_iframe_enabled", map[string]any{"value": false}).wantStatus(t, 403)
	newClient(t, ts).post("/api/v1/settings/Accounts_iframe_enabled", map[string]any{"value": false}).wantStatus(t, 401)

	// Two-factor: an admin logged in with a password (not a PAT that
	// bypasses 2FA) needs x-2fa-code; GET does not.
	s.cfg.Now = func() time.Time { return time.Now().Add(time.Hour) } // past RememberFor of the admin's creation
	s.now = s.cfg.Now
	id, tok := login(t, newClient(t, ts), "admin", testAdminPW)
	pw := newClient(t, ts).as(id, tok)
	pw.get("/api/v1/settings/Accounts_iframe_enabled").wantStatus(t, 200)
	if r := pw.post("/api/v1/settings/Accounts_iframe_enabled", map[string]any{"value": false}); r.status != 400 || r.str("errorType") != "totp-required" {
		t.Fatalf("POST with a password login and no 2FA code: %d %s", r.status, r.raw)
	}
	if v := s.Setting("Accounts_iframe_enabled"); v != true {
		t.Fatalf("refused POST changed the setting: %v", v)
	}
}

// permissions.update replaces the roles of the permissions it lists, checks
// the body like its ajv schema, refuses unknown permissions and roles given
// by name instead of _id without changing anything, and needs
// access-permissions.
func TestPermissionsUpdate(t *testing.T) {
	s, ts := newTestServer(t, Config{DisableRateLimit: true, Profile: "9.0"})
	admin := adminClient(t, s, ts)
	role, err := s.AddRole("rcsso-service")
	if err != nil {
		t.Fatal(err)
	}
	r := admin.post("/api/v1/permissions.update", map[string]any{"permissions": []any{
		map[string]any{"_id": "create-user", "roles": []any{"admin", role}},
		map[string]any{"_id": "api-bypass-rate-limit", "roles": []any{"admin", "bot", "app", role}},
	}}).wantStatus(t, 200)
	var got []any
	for _, p := range r.field("permissions").([]any) {
		if m := p.(map[string]any); m["_id"] == "create-user" {
			got = m["roles"].([]any)
		}
	}
	if !slices.Equal(got, []any{"admin", role}) || r.field("success") != true {
		t.Fatalf("answer: %s", r.raw)
	}
	before := admin.get("/api/v1/permissions.listAll").raw

	for _, c := range []struct {
		name string
		body any
		want string
	}{
		{"role by name", map[string]any{"permissions": []any{map[string]any{"_id": "create-user", "roles": []any{"rcsso-service"}}}},
			`{"success":false,"error":"Invalid role","errorType":"error-invalid-role"}`},
		{"unknown permission", map[string]any{"permissions": []any{map[string]any{"_id": "make-coffee", "roles": []any{"admin"}}}},
			`{"success":false,"error":"Invalid permission","errorType":"error-invalid-permission"}`},
		{"a permission twice", map[string]any{"permissions": []any{map[string]any{"_id": "create-user", "roles": []any{}}, map[string]any{"_id": "create-user", "roles": []any{"admin"}}}},
			`{"success":false,"error":"Invalid permission","errorType":"error-invalid-permission"}`},
		{"no permissions", map[string]any{},
			`{"success":false,"error":"must have required property 'permissions' [invalid-params]","errorType":"invalid-params"}`},
		{"extra key", map[string]any{"permissions": []any{}, "x": 1},
			`{"success":false,"error":"must NOT have additional properties [invalid-params]","errorType":"invalid-params"}`},
		{"permissions not an array", map[string]any{"permissions": "create-user"},
			`{"success":false,"error":"/permissions must be array [invalid-params]","errorType":"invalid-params"}`},
		{"item not an object", map[string]any{"permissions": []any{"create-user"}},
			`{"success":false,"error":"/permissions/0 must be object [invalid-params]","errorType":"invalid-params"}`},
		{"roles missing", map[string]any{"permissions": []any{map[string]any{"_id": "create-user"}}},
			`{"success":false,"error":"/permissions/0 must have required property 'roles' [invalid-params]","errorType":"invalid-params"}`},
		{"role not a string", map[string]any{"permissions": []any{map[string]any{"_id": "create-user", "roles": []any{1}}}},
			`{"success":false,"error":"/permissions/0/roles/0 must be string [invalid-params]","errorType":"invalid-params"}`},
		{"duplicate roles", map[string]any{"permissions": []any{map[string]any{"_id": "create-user", "roles": []any{"admin", "admin"}}}},
			`{"success":false,"error":"/permissions/0/roles must NOT have duplicate items [invalid-params]","errorType":"invalid-params"}`},
		{"_id not a string", map[string]any{"permissions": []any{map[string]any{"_id": true, "roles": []any{}}}},
			`{"success":false,"error":"/permissions/0/_id must be string [invalid-params]","errorType":"invalid-params"}`},
	} {
		r := admin.post("/api/v1/permissions.update", c.body)
		if r.status != 400 {
			t.Errorf("%s: %d %s", c.name, r.status, r.raw)
			continue
		}
		r.wantBody(t, c.want)
	}
	if after := admin.get("/api/v1/permissions.listAll").raw; after != before {
		t.Fatal("a refused permissions.update changed permissions")
	}
	uid, _ := s.AddUser(NewUser{Username: "plain", PAT: "plain-pat"})
	newClient(t, ts).as(uid, "plain-pat").post("/api/v1/permissions.update", map[string]any{"permissions": []any{}}).wantStatus(t, 403)
}

// With --data the emulator keeps settings, roles, permissions and users
// across a restart; the file's settings win over the flags of the new
// start; a broken file is refused with its name.
func TestDataFileKeepsStateAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "emu.json")
	cfg := Config{DisableRateLimit: true, DataFile: path, Settings: map[string]any{"Iframe_Integration_receive_enable": false}}
	s, ts := newTestServer(t, cfg)
	admin := adminClient(t, s, ts)
	admin.post("/api/v1/settings/Iframe_Integration_receive_enable", map[string]any{"value": true}).wantStatus(t, 200)
	role, _ := s.AddRole("rcsso-service")
	admin.post("/api/v1/permissions.update", map[string]any{"permissions": []any{
		map[string]any{"_id": "create-user", "roles": []any{"admin", role}}}}).wantStatus(t, 200)
	bob := createUser(t, admin, "bob", "bob@example.test", "bob-password")
	adminID := s.AdminID()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ts.Close()

	s2, ts2 := newTestServer(t, cfg) // the same flags again
	if s2.AdminID() != adminID {
		t.Fatalf("admin _id %s after restart, want %s", s2.AdminID(), adminID)
	}
	if v := s2.Setting("Iframe_Integration_receive_enable"); v != true {
		t.Fatalf("setting after restart: %v (the flag's false won over the saved true)", v)
	}
	admin2 := adminClient(t, s2, ts2)
	r := admin2.get("/api/v1/permissions.listAll").wantStatus(t, 200)
	if !strings.Contains(r.raw, `"_id":"create-user","_updatedAt":`) || !strings.Contains(r.raw, role) {
		t.Fatalf("permissions after restart: %s", r.raw)
	}
	if !strings.Contains(admin2.get("/api/v1/roles.list").raw, `"name":"rcsso-service"`) {
		t.Fatal("custom role lost")
	}
	if id, _ := login(t, newClient(t, ts2), "bob", "bob-password"); id != bob {
		t.Fatalf("bob logs in as %s, want %s", id, bob)
	}

	for name, content := range map[string]string{
		"not JSON":       "{",
		"wrong format":   `{"format":99}`,
		"duplicate user": `{"format":1,"users":[{"_id":"a","username":"x"},{"_id":"b","username":"x"}]}`,
		"user not ext":   `{"format":1,"users":[42]}`,
		"role without":   `{"format":1,"roles":[{"name":"x"}]}`,
	} {
		bad := filepath.Join(t.TempDir(), "bad.json")
		if err := os.WriteFile(bad, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Config{AdminPassword: "x", BcryptCost: 4, DataFile: bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// /api/info carries the signed supported-versions list when the emulator
// is told when support ends; its payload names the version and expiration.
func TestInfoSupportedVersions(t *testing.T) {
	until := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	_, ts := newTestServer(t, Config{Profile: "7.x", SupportExpires: until})
	r := newClient(t, ts).get("/api/info").wantStatus(t, 200)
	parts := strings.Split(r.str("supportedVersions"), ".")
	if len(parts) != 3 {
		t.Fatalf("supportedVersions %q is not a JWT", r.str("supportedVersions"))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Versions []struct{ Version, Expiration string }
	}
	if err := json.Unmarshal(b, &p); err != nil || len(p.Versions) != 1 || p.Versions[0].Version != "7.10.0" || p.Versions[0].Expiration != "2026-03-01T00:00:00.000Z" {
		t.Fatalf("payload %s (%v)", b, err)
	}
	_, ts = newTestServer(t, Config{})
	if r := newClient(t, ts).get("/api/info"); r.field("supportedVersions") != nil {
		t.Fatalf("no SupportExpires, yet %s", r.raw)
	}
}

// The Iframe Integration and framing settings, two-factor, the support
// window and the data file are flags of rcsso emulate.
func TestFlagsSetIntegrationSettings(t *testing.T) {
	var cfg Config
	fs := flag.NewFlagSet("emulate", flag.ContinueOnError)
	apply := Flags(fs, &cfg)
	if err := fs.Parse([]string{"--iframe-integration-receive=true", "--iframe-integration-origins", "https://a.test,https://b.test",
		"--iframe-integration-send", "true", "--iframe-integration-target-origin", "https://a.test", "--iframe-restrict-access=true",
		"--two-factor", "--support-expires", "2026-06-01", "--data", "/tmp/x.json", "--iframe-url", "https://sso.test/login"}); err != nil {
		t.Fatal(err)
	}
	apply()
	want := map[string]any{"Iframe_Integration_receive_enable": true, "Iframe_Integration_receive_origin": "https://a.test,https://b.test",
		"Iframe_Integration_send_enable": true, "Iframe_Integration_send_target_origin": "https://a.test", "Iframe_Restrict_Access": true,
		"Accounts_iframe_enabled": true, "Accounts_iframe_url": "https://sso.test/login", "Accounts_Iframe_api_method": "POST"}
	for k, v := range want {
		if cfg.Settings[k] != v {
			t.Errorf("%s = %v, want %v", k, cfg.Settings[k], v)
		}
	}
	if !cfg.TwoFactor || cfg.DataFile != "/tmp/x.json" || !cfg.SupportExpires.Equal(time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("cfg %+v", cfg)
	}
	fs = flag.NewFlagSet("emulate", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	Flags(fs, &cfg)
	for _, bad := range [][]string{{"--iframe-integration-receive=maybe"}, {"--support-expires", "soon"}} {
		if err := fs.Parse(bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
