package rocketchat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
)

// Setting, SetSetting and UpdatePermissions send what settings.yaml and
// user-management.yaml describe; the password of a password account goes
// only as its sha256 in x-2fa-code, never in the URL or an error; odd
// answers are errors, not values.
func TestSettingsAndPermissionsUpdate(t *testing.T) {
	var answer string
	c, ts := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		if answer != "" {
			_, _ = w.Write([]byte(answer))
			return
		}
		switch {
		case r.Method == "GET" && r.URL.Path == "/api/v1/settings/Iframe_Restrict_Access":
			_, _ = w.Write([]byte(`{"_id":"Iframe_Restrict_Access","value":true,"success":true}`))
		case r.Method == "POST" && r.URL.Path == "/api/v1/settings/Accounts_iframe_enabled":
			_, _ = w.Write([]byte(`{"success":true}`))
		case r.Method == "POST" && r.URL.Path == "/api/v1/permissions.update":
			_, _ = w.Write([]byte(`{"permissions":[],"success":true}`))
		default:
			w.WriteHeader(400)
			_, _ = w.Write([]byte(`{"success":false}`))
		}
	})
	ctx := context.Background()
	v, err := c.Setting(ctx, admin, "Iframe_Restrict_Access")
	if err != nil || v != true {
		t.Fatalf("Setting = %v, %v", v, err)
	}
	if _, err := c.Setting(ctx, admin, "No_Such"); err == nil {
		t.Fatal("400 {success:false} read as a value")
	}
	const pw = "the-admin-password"
	if err := c.SetSetting(ctx, admin, "Accounts_iframe_enabled", false, pw); err != nil {
		t.Fatal(err)
	}
	r := ts.last(t)
	sum := sha256.Sum256([]byte(pw))
	if r.Header.Get("X-2fa-Code") != hex.EncodeToString(sum[:]) || r.Header.Get("X-2fa-Method") != "password" || string(r.Body) != `{"value":false}` {
		t.Fatalf("SetSetting sent %v %s", r.Header, r.Body)
	}
	if err := c.SetSetting(ctx, admin, "Accounts_iframe_enabled", true, ""); err != nil || ts.last(t).Header.Get("X-2fa-Code") != "" {
		t.Fatalf("without a password: %v, header %q", err, ts.last(t).Header.Get("X-2fa-Code"))
	}
	err = c.SetSetting(ctx, admin, "Unknown", 1, pw)
	if err == nil || strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), hex.EncodeToString(sum[:])) {
		t.Fatalf("SetSetting of an unknown setting: %v", err)
	}
	if err := c.UpdatePermissions(ctx, admin, map[string][]string{"create-user": {"admin", "k3Rr9Xc2"}, "delete-user": nil}); err != nil {
		t.Fatal(err)
	}
	if b := string(ts.last(t).Body); b != `{"permissions":[{"_id":"create-user","roles":["admin","k3Rr9Xc2"]},{"_id":"delete-user","roles":[]}]}` {
		t.Fatalf("permissions.update body %s", b)
	}
	n := len(ts.reqs)
	for _, id := range []string{"", "../users.delete", "a/b", "x?y=1", strings.Repeat("a", 201), "a b"} {
		if _, err := c.Setting(ctx, admin, id); err == nil {
			t.Errorf("Setting(%q) sent", id)
		}
		if err := c.SetSetting(ctx, admin, id, 1, ""); err == nil {
			t.Errorf("SetSetting(%q) sent", id)
		}
	}
	if len(ts.reqs) != n {
		t.Fatal("invalid setting ids reached the server")
	}
	for _, a := range []string{`{"success":true}`, `{"_id":"x","value":{"$bad":`, `[]`} {
		answer = a
		if v, err := c.Setting(ctx, admin, "Iframe_Restrict_Access"); err == nil {
			t.Errorf("answer %s: value %v", a, v)
		}
	}
}

// /api/info's supportedVersions is kept as a string; any other type is
// ignored.
func TestInfoSupportedVersions(t *testing.T) {
	var answer string
	c, _ := newServer(t, func(w http.ResponseWriter, r *http.Request, _ int) { _, _ = w.Write([]byte(answer)) })
	for a, want := range map[string]string{
		`{"version":"8.0","supportedVersions":"a.b.c","success":true}`: "a.b.c",
		`{"version":"8.0","supportedVersions":{"x":1},"success":true}`: "",
		`{"version":"8.0","success":true}`:                             "",
	} {
		answer = a
		info, err := c.Info(context.Background())
		if err != nil || info.SupportedVersions != want || info.Version != "8.0" {
			t.Errorf("%s: %+v %v", a, info, err)
		}
	}
}
