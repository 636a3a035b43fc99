package app

import (
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/store"
)

// visitWithGroups is an API URL call for a person whose groups the
// trusted proxy passes in X-Forwarded-Groups.
func visitWithGroups(a *App, user, groups string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", "/api/rocketchat/token", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	r.Header.Set("Origin", a.Config.RocketChat.URL)
	r.Header.Set("X-Forwarded-User", user)
	r.Header.Set("X-Forwarded-Groups", groups)
	w := httptest.NewRecorder()
	a.Handler.ServeHTTP(w, r)
	return w
}

// roomsConfig is an emulated Rocket.Chat with #sales and team Sales, and
// rcsso giving members of group sales #sales, #gone (which does not
// exist) and team Sales from the header source's groups_header.
func roomsConfig(t *testing.T) (*rcemu.Server, config.Config, string, string) {
	t.Helper()
	emu, cfg := emulated(t, rcemu.Config{Profile: "8.x", CreateTokensSecret: "s"})
	sales, err := emu.AddRoom(rcemu.NewRoom{Name: "sales"})
	if err != nil {
		t.Fatal(err)
	}
	team, _, err := emu.AddTeam(rcemu.NewRoom{Name: "Sales"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Identity[0].Options["groups_header"] = "X-Forwarded-Groups"
	cfg.Provision.Rooms = []config.RoomGrant{{Group: "sales", Channels: []string{"sales", "gone"}, Teams: []string{"Sales"}}}
	return emu, cfg, sales, team
}

// On login through the API URL the person joins what their groups give;
// a room that does not exist is a warning on /readyz, never a failed
// login; when the group goes, what rcsso added is left (after the
// per-person interval).
func TestRoomsFromGroupsOverTheAPIURL(t *testing.T) {
	emu, cfg, sales, team := roomsConfig(t)
	a := build(t, cfg)
	w := visitWithGroups(a, "nina", "sales, staff")
	if w.Code != 200 || token(w) == "" {
		t.Fatalf("login with a missing room in provisioning.rooms: %d %s", w.Code, w.Body)
	}
	a.Broker.WaitSync()
	nina := userOf(t, emu, token(w))
	if !emu.IsMember(sales, nina) || !emu.IsTeamMember(team, nina) {
		t.Fatalf("after the first login nina is in #sales: %v, team Sales: %v", emu.IsMember(sales, nina), emu.IsTeamMember(team, nina))
	}
	code, body := readyz(a)
	if code != 200 || !strings.Contains(body, `"rooms":"warn: #gone does not exist"`) {
		t.Fatalf("/readyz = %d %s", code, body)
	}

	// The group goes (the proxy passes other groups): after the interval
	// nina leaves what rcsso added, on a later request.
	l, err := a.Store.GetLink(t.Context(), "header:nina")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Store.UpdateLink(t.Context(), l.Subject, func(x *store.Link) error {
		x.Rooms.SyncedAt = x.Rooms.SyncedAt.Add(-time.Hour) // the interval has passed
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if w := visitWithGroups(a, "nina", "staff"); w.Code != 200 {
		t.Fatalf("API URL: %d %s", w.Code, w.Body)
	}
	a.Broker.WaitSync()
	if emu.IsMember(sales, nina) || emu.IsTeamMember(team, nina) {
		t.Fatal("nina is still in what rcsso added for a group she left")
	}
}

// The service account must hold the room permissions: rcsso refuses to
// start and names them.
func TestRoomsPermissionsChecked(t *testing.T) {
	emu, cfg, _, _ := roomsConfig(t)
	emu.SetPermissionRoles("view-all-teams")
	emu.SetPermissionRoles("add-user-to-any-c-room")
	_, err := Build(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if !errors.Is(err, ErrIncapable) {
		t.Fatalf("Build = %v, want ErrIncapable", err)
	}
	for _, want := range []string{"add-user-to-any-c-room", "view-all-teams", "teams.members"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "add-user-to-joined-room") {
		t.Errorf("no private group is configured, yet the error asks for add-user-to-joined-room:\n%v", err)
	}
}
