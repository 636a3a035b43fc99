package rcemu

import (
	"net/http"
	"net/url"
	"testing"
)

// roomFixture is an emulator with a user bob (PAT "bob-pat"), a public
// channel #sales and a private group #leads owned by the admin, and a
// team Sales.
type roomFixture struct {
	s                  *Server
	admin, bob         *client
	bobID, carolID     string
	sales, leads       string
	teamID, teamRoomID string
}

func newRoomFixture(t *testing.T, profile string) roomFixture {
	t.Helper()
	s, ts := newTestServer(t, Config{Profile: profile, DisableRateLimit: true})
	f := roomFixture{s: s, admin: adminClient(t, s, ts)}
	var err error
	if f.bobID, err = s.AddUser(NewUser{Username: "bob", Name: "Bob Builder", Email: "bob@example.test", PAT: "bob-pat"}); err != nil {
		t.Fatal(err)
	}
	if f.carolID, err = s.AddUser(NewUser{Username: "carol", Name: "Carol", Email: "carol@example.test"}); err != nil {
		t.Fatal(err)
	}
	f.bob = newClient(t, ts).as(f.bobID, "bob-pat")
	if f.sales, err = s.AddRoom(NewRoom{Name: "sales"}); err != nil {
		t.Fatal(err)
	}
	if f.leads, err = s.AddRoom(NewRoom{Name: "leads", Private: true}); err != nil {
		t.Fatal(err)
	}
	if f.teamID, f.teamRoomID, err = s.AddTeam(NewRoom{Name: "Sales"}); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestChannelsInviteMembersKick(t *testing.T) {
	for _, profile := range []string{"6.x", "8.x", "9.0"} {
		t.Run(profile, func(t *testing.T) {
			f := newRoomFixture(t, profile)
			info := f.admin.get("/api/v1/channels.info?roomName=sales").wantStatus(t, http.StatusOK)
			if info.str("channel._id") != f.sales || info.str("channel.t") != "c" {
				t.Fatalf("channels.info: %s", info.raw)
			}
			f.admin.post("/api/v1/channels.invite", map[string]any{"roomId": f.sales, "userId": f.carolID}).wantStatus(t, http.StatusOK)
			if !f.s.IsMember(f.sales, f.carolID) {
				t.Fatal("carol was not added")
			}
			// Inviting a member again changes nothing and succeeds.
			f.admin.post("/api/v1/channels.invite", map[string]any{"roomId": f.sales, "userId": f.carolID}).wantStatus(t, http.StatusOK)

			m := f.admin.get("/api/v1/channels.members?roomId="+f.sales+"&filter=CAR").wantStatus(t, http.StatusOK)
			members, _ := m.field("members").([]any)
			if m.field("total") != float64(1) || len(members) != 1 || members[0].(map[string]any)["username"] != "carol" {
				t.Fatalf("channels.members filter: %s", m.raw)
			}
			all := f.admin.get("/api/v1/channels.members?roomId="+f.sales).wantStatus(t, http.StatusOK)
			if all.field("total") != float64(2) { // admin (owner) and carol
				t.Fatalf("channels.members: %s", all.raw)
			}

			f.admin.post("/api/v1/channels.kick", map[string]any{"roomId": f.sales, "userId": f.carolID}).wantStatus(t, http.StatusOK)
			if f.s.IsMember(f.sales, f.carolID) {
				t.Fatal("carol was not removed")
			}
			// The admin holds kick-user-from-any-c-room: kicking a
			// non-member is not an error.
			f.admin.post("/api/v1/channels.kick", map[string]any{"roomId": f.sales, "userId": f.carolID}).wantStatus(t, http.StatusOK)
		})
	}
}

func TestChannelsErrors(t *testing.T) {
	f := newRoomFixture(t, "8.x")
	f.admin.get("/api/v1/channels.info?roomName=nope").wantStatus(t, http.StatusBadRequest).
		wantBody(t, `{"success":false,"error":"The required \"roomId\" or \"roomName\" param provided does not match any channel [error-room-not-found]","errorType":"error-room-not-found"}`)
	// A private group is not a channel.
	f.admin.get("/api/v1/channels.info?roomName=leads").wantStatus(t, http.StatusBadRequest)
	f.admin.post("/api/v1/channels.invite", map[string]any{"roomId": f.sales, "userId": "nobody"}).wantStatus(t, http.StatusBadRequest).
		wantBody(t, `{"success":false,"error":"invalid-user-invite-list","errorType":"Cannot invite if no users are provided"}`)
	f.admin.post("/api/v1/channels.invite", map[string]any{"roomId": f.sales}).wantStatus(t, http.StatusBadRequest).
		wantBody(t, `{"success":false,"error":"Please provide \"userId\" or \"username\" or \"userIds\" or \"usernames\" as param [error-users-params-not-provided]","errorType":"error-users-params-not-provided"}`)
	// bob (role user) may not add people to a channel he is not in.
	f.bob.post("/api/v1/channels.invite", map[string]any{"roomId": f.sales, "userId": f.carolID}).wantStatus(t, http.StatusBadRequest).
		wantBody(t, `{"success":false,"error":"Not allowed [error-not-allowed]","errorType":"error-not-allowed","details":{"method":"addUsersToRoom"}}`)
	f.bob.post("/api/v1/channels.kick", map[string]any{"roomId": f.sales, "userId": f.s.AdminID()}).wantStatus(t, http.StatusBadRequest).
		wantBody(t, `{"success":false,"error":"Not allowed [error-not-allowed]","errorType":"error-not-allowed","details":{"method":"removeUserFromRoom"}}`)
	// The room's last owner cannot be removed.
	f.admin.post("/api/v1/channels.kick", map[string]any{"roomId": f.sales, "userId": f.s.AdminID()}).wantStatus(t, http.StatusBadRequest)
	f.admin.post("/api/v1/channels.kick", map[string]any{"roomId": f.sales}).wantStatus(t, http.StatusBadRequest).
		wantBody(t, `{"success":false,"error":"The required \"userId\" or \"username\" param was not provided [error-user-param-not-provided]","errorType":"error-user-param-not-provided"}`)
}

func TestChannelsNotAllowed9IsForbidden(t *testing.T) {
	f := newRoomFixture(t, "9.0")
	f.bob.post("/api/v1/channels.invite", map[string]any{"roomId": f.sales, "userId": f.carolID}).wantStatus(t, http.StatusForbidden).
		wantBody(t, `{"success":false,"error":"Not allowed [error-not-allowed]","errorType":"error-forbidden"}`)
}

func TestGroupsNeedMembership(t *testing.T) {
	f := newRoomFixture(t, "8.x")
	// The admin owns #leads: info, invite, members, kick.
	f.admin.get("/api/v1/groups.info?roomName=leads").wantStatus(t, http.StatusOK)
	f.admin.post("/api/v1/groups.invite", map[string]any{"roomName": "leads", "userId": f.bobID}).wantStatus(t, http.StatusOK)
	m := f.admin.get("/api/v1/groups.members?roomId="+f.leads+"&filter=bob").wantStatus(t, http.StatusOK)
	if m.field("total") != float64(1) {
		t.Fatalf("groups.members: %s", m.raw)
	}
	f.admin.post("/api/v1/groups.kick", map[string]any{"roomId": f.leads, "userId": f.bobID}).wantStatus(t, http.StatusOK).wantBody(t, `{"success":true}`)
	// Kicking someone who is not in the group: the admin lacks
	// kick-user-from-any-p-room (no role holds it by default).
	f.admin.post("/api/v1/groups.kick", map[string]any{"roomId": f.leads, "userId": f.bobID}).wantStatus(t, http.StatusBadRequest).
		wantBody(t, `{"success":false,"error":"User is not in this room [error-user-not-in-room]","errorType":"error-user-not-in-room","details":{"method":"removeUserFromRoom"}}`)

	// A group the admin is not in does not exist for info and members,
	// and cannot be joined by others through the admin
	// (add-user-to-any-p-room is held by no role).
	other, err := f.s.AddRoom(NewRoom{Name: "secret", Private: true, Owner: f.bobID})
	if err != nil {
		t.Fatal(err)
	}
	notFound := `{"success":false,"error":"The required \"roomId\" or \"roomName\" param provided does not match any group [error-room-not-found]","errorType":"error-room-not-found"}`
	f.admin.get("/api/v1/groups.info?roomName=secret").wantStatus(t, http.StatusBadRequest).wantBody(t, notFound)
	f.admin.get("/api/v1/groups.members?roomId="+other).wantStatus(t, http.StatusBadRequest).wantBody(t, notFound)
	f.admin.post("/api/v1/groups.invite", map[string]any{"roomId": other, "userId": f.carolID}).wantStatus(t, http.StatusBadRequest).
		wantBody(t, `{"success":false,"error":"Not allowed [error-not-allowed]","errorType":"error-not-allowed","details":{"method":"addUsersToRoom"}}`)
	f.admin.get("/api/v1/groups.info").wantStatus(t, http.StatusBadRequest).
		wantBody(t, `{"success":false,"error":"The parameter \"roomId\" or \"roomName\" is required [error-room-param-not-provided]","errorType":"error-room-param-not-provided"}`)
	f.admin.post("/api/v1/groups.invite", map[string]any{"roomName": "sales", "userId": f.bobID}).wantStatus(t, http.StatusBadRequest).wantBody(t, notFound)
}

func TestTeamsAddMembersMembersRemove(t *testing.T) {
	f := newRoomFixture(t, "8.x")
	info := f.admin.get("/api/v1/teams.info?teamName=Sales").wantStatus(t, http.StatusOK)
	if info.str("teamInfo._id") != f.teamID || info.str("teamInfo.roomId") != f.teamRoomID {
		t.Fatalf("teams.info: %s", info.raw)
	}
	f.admin.post("/api/v1/teams.addMembers", map[string]any{"teamId": f.teamID, "members": []any{map[string]any{"userId": f.bobID}}}).
		wantStatus(t, http.StatusOK).wantBody(t, `{"success":true}`)
	if !f.s.IsTeamMember(f.teamID, f.bobID) || !f.s.IsMember(f.teamRoomID, f.bobID) {
		t.Fatal("bob is not in the team and its main room")
	}
	m := f.admin.get("/api/v1/teams.members?"+url.Values{"teamId": {f.teamID}, "username": {"BOB"}}.Encode()).wantStatus(t, http.StatusOK)
	members, _ := m.field("members").([]any)
	if m.field("total") != float64(1) || len(members) != 1 || members[0].(map[string]any)["user"].(map[string]any)["username"] != "bob" {
		t.Fatalf("teams.members: %s", m.raw)
	}
	// A caller who is neither a member nor holds view-all-teams sees
	// nobody (not an error).
	carolPAT := "carol-pat"
	f.s.mu.Lock()
	f.s.st.users[f.carolID].tokens = append(f.s.st.users[f.carolID].tokens, tokenEntry{hashedToken: hashToken(carolPAT), pat: true})
	f.s.mu.Unlock()
	carol := f.bob.as(f.carolID, carolPAT)
	carol.get("/api/v1/teams.members?teamId="+f.teamID).wantStatus(t, http.StatusOK).
		wantBody(t, `{"success":true,"members":[],"total":0,"count":0,"offset":0}`)
	// bob (a plain member) may not remove members.
	f.bob.post("/api/v1/teams.removeMember", map[string]any{"teamId": f.teamID, "userId": f.bobID}).wantStatus(t, http.StatusForbidden)

	f.admin.post("/api/v1/teams.removeMember", map[string]any{"teamId": f.teamID, "userId": f.bobID}).wantStatus(t, http.StatusOK)
	if f.s.IsTeamMember(f.teamID, f.bobID) || f.s.IsMember(f.teamRoomID, f.bobID) {
		t.Fatal("bob is still in the team or its main room")
	}
	f.admin.post("/api/v1/teams.removeMember", map[string]any{"teamId": f.teamID, "userId": f.bobID}).wantStatus(t, http.StatusBadRequest).
		wantBody(t, `{"success":false,"error":"member-does-not-exist"}`)
	f.admin.post("/api/v1/teams.removeMember", map[string]any{"teamId": f.teamID, "userId": f.s.AdminID()}).wantStatus(t, http.StatusBadRequest).
		wantBody(t, `{"success":false,"error":"last-owner-can-not-be-removed"}`)
}

func TestTeamsErrors(t *testing.T) {
	f := newRoomFixture(t, "8.x")
	f.admin.get("/api/v1/teams.info?teamName=Nope").wantStatus(t, http.StatusBadRequest).wantBody(t, `{"success":false,"error":"Team not found"}`)
	f.admin.get("/api/v1/teams.info").wantStatus(t, http.StatusBadRequest).
		wantBody(t, `{"success":false,"error":"must have required property 'teamId' [invalid-params]","errorType":"invalid-params"}`)
	f.admin.get("/api/v1/teams.members?teamId=nope").wantStatus(t, http.StatusBadRequest).wantBody(t, `{"success":false,"error":"team-does-not-exist"}`)
	f.admin.get("/api/v1/teams.members?teamId="+f.teamID+"&sort=x").wantStatus(t, http.StatusBadRequest)
	f.admin.post("/api/v1/teams.addMembers", map[string]any{"teamId": "nope", "members": []any{map[string]any{"userId": f.bobID}}}).
		wantStatus(t, http.StatusBadRequest).wantBody(t, `{"success":false,"error":"team-does-not-exist"}`)
	f.admin.post("/api/v1/teams.addMembers", map[string]any{"teamId": f.teamID, "members": []any{}}).wantStatus(t, http.StatusBadRequest)
	f.admin.post("/api/v1/teams.addMembers", map[string]any{"teamId": f.teamID, "members": []any{map[string]any{"userId": f.bobID, "x": 1}}}).
		wantStatus(t, http.StatusBadRequest)
	f.bob.post("/api/v1/teams.addMembers", map[string]any{"teamId": f.teamID, "members": []any{map[string]any{"userId": f.bobID}}}).
		wantStatus(t, http.StatusForbidden).wantBody(t, `{"success":false,"error":"forbidden"}`)
}

func TestRoomHelpers(t *testing.T) {
	f := newRoomFixture(t, "8.x")
	if err := f.s.JoinRoom(f.sales, f.bobID); err != nil || !f.s.IsMember(f.sales, f.bobID) {
		t.Fatalf("JoinRoom: %v", err)
	}
	if err := f.s.JoinRoom(f.teamRoomID, f.bobID); err != nil || !f.s.IsTeamMember(f.teamID, f.bobID) {
		t.Fatalf("joining a team's main room makes a team member: %v", err)
	}
	ids, err := f.s.RoomMembers(f.sales)
	if err != nil || len(ids) != 2 {
		t.Fatalf("RoomMembers = %v, %v", ids, err)
	}
	if err := f.s.DeleteRoom(f.teamRoomID); err != nil {
		t.Fatal(err)
	}
	f.admin.get("/api/v1/teams.info?teamId="+f.teamID).wantStatus(t, http.StatusBadRequest)
	if _, err := f.s.AddRoom(NewRoom{Name: "sales"}); err == nil {
		t.Fatal("AddRoom accepted a taken name")
	}
	if err := f.s.JoinRoom("nope", f.bobID); err != ErrNoRoom {
		t.Fatalf("JoinRoom(unknown) = %v", err)
	}
	st := f.s.Stats()
	if st.Routes["teams.info"] != 1 {
		t.Fatalf("Stats.Routes = %v", st.Routes)
	}
}

func TestRoomRoutesNeedAuthAndAreRateLimited(t *testing.T) {
	s, ts := newTestServer(t, Config{Profile: "8.x", Settings: map[string]any{"API_Enable_Rate_Limiter_Limit_Calls_Default": 2}})
	if _, err := s.AddRoom(NewRoom{Name: "sales"}); err != nil {
		t.Fatal(err)
	}
	newClient(t, ts).get("/api/v1/channels.info?roomName=sales").wantStatus(t, http.StatusUnauthorized)
	// Without api-bypass-rate-limit the admin is limited like anyone.
	s.SetPermissionRoles("api-bypass-rate-limit", "bot")
	admin := adminClient(t, s, ts)
	admin.get("/api/v1/channels.info?roomName=sales").wantStatus(t, http.StatusOK)
	admin.get("/api/v1/channels.info?roomName=sales").wantStatus(t, http.StatusOK)
	r := admin.get("/api/v1/channels.info?roomName=sales").wantStatus(t, http.StatusTooManyRequests)
	if r.header.Get("X-RateLimit-Reset") == "" {
		t.Fatalf("429 without X-RateLimit-Reset: %v", r.header)
	}
}
