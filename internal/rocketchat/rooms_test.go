package rocketchat

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestRoomRequests(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		body      string
		call      func(*Client) error
		method    string
		path      string
		wantQuery string
		wantBody  string
	}{
		{"channels.info", `{"channel":{"_id":"r1","name":"sales","t":"c"},"success":true}`, func(c *Client) error {
			r, err := c.ChannelInfo(ctx, admin, "sales & more")
			if err == nil && (r.ID != "r1" || r.Type != "c") {
				t.Errorf("room = %+v", r)
			}
			return err
		}, "GET", "/api/v1/channels.info", "roomName=sales+%26+more", ""},
		{"groups.info", `{"group":{"_id":"g1","name":"leads","t":"p"},"success":true}`, func(c *Client) error {
			r, err := c.GroupInfo(ctx, admin, "leads")
			if err == nil && r.ID != "g1" {
				t.Errorf("room = %+v", r)
			}
			return err
		}, "GET", "/api/v1/groups.info", "roomName=leads", ""},
		{"teams.info", `{"teamInfo":{"_id":"607e0d9b49d493189836bfac","name":"Sales","type":1,"roomId":"m1"},"success":true}`, func(c *Client) error {
			ti, err := c.TeamInfo(ctx, admin, "Sales")
			if err == nil && (ti.ID != "607e0d9b49d493189836bfac" || ti.RoomID != "m1" || ti.Type != 1) {
				t.Errorf("team = %+v", ti)
			}
			return err
		}, "GET", "/api/v1/teams.info", "teamName=Sales", ""},
		{"channels.members", `{"members":[{"_id":"u1","username":"bob","status":"offline"}],"count":1,"offset":0,"total":1,"success":true}`, func(c *Client) error {
			m, total, err := c.ChannelMembers(ctx, admin, "r1", "bob")
			if err == nil && (len(m) != 1 || m[0].Username != "bob" || total != 1) {
				t.Errorf("members = %+v %d", m, total)
			}
			return err
		}, "GET", "/api/v1/channels.members", "count=100&filter=bob&roomId=r1", ""},
		{"groups.members", `{"members":[],"count":0,"offset":0,"total":0,"success":true}`, func(c *Client) error {
			_, _, err := c.GroupMembers(ctx, admin, "g1", "bob")
			return err
		}, "GET", "/api/v1/groups.members", "count=100&filter=bob&roomId=g1", ""},
		{"teams.members", `{"members":[{"user":{"_id":"u1","username":"bob"},"roles":["member"]}],"total":1,"count":1,"offset":0,"success":true}`, func(c *Client) error {
			m, total, err := c.TeamMembers(ctx, admin, "t1", "bob")
			if err == nil && (len(m) != 1 || m[0].ID != "u1" || total != 1) {
				t.Errorf("members = %+v %d", m, total)
			}
			return err
		}, "GET", "/api/v1/teams.members", "count=100&teamId=t1&username=bob", ""},
		{"channels.invite", `{"channel":{"_id":"r1"},"success":true}`, func(c *Client) error { return c.ChannelInvite(ctx, admin, "r1", "u1") },
			"POST", "/api/v1/channels.invite", "", `{"roomId":"r1","userId":"u1"}`},
		{"groups.invite", `{"group":{"_id":"g1"},"success":true}`, func(c *Client) error { return c.GroupInvite(ctx, admin, "g1", "u1") },
			"POST", "/api/v1/groups.invite", "", `{"roomId":"g1","userId":"u1"}`},
		{"channels.kick", `{"channel":{"_id":"r1"},"success":true}`, func(c *Client) error { return c.ChannelKick(ctx, admin, "r1", "u1") },
			"POST", "/api/v1/channels.kick", "", `{"roomId":"r1","userId":"u1"}`},
		{"groups.kick", `{"success":true}`, func(c *Client) error { return c.GroupKick(ctx, admin, "g1", "u1") },
			"POST", "/api/v1/groups.kick", "", `{"roomId":"g1","userId":"u1"}`},
		{"teams.addMembers", `{"success":true}`, func(c *Client) error { return c.TeamAddMember(ctx, admin, "t1", "u1") },
			"POST", "/api/v1/teams.addMembers", "", `{"teamId":"t1","members":[{"userId":"u1"}]}`},
		{"teams.removeMember", `{"success":true}`, func(c *Client) error { return c.TeamRemoveMember(ctx, admin, "t1", "u1") },
			"POST", "/api/v1/teams.removeMember", "", `{"teamId":"t1","userId":"u1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ts := newServer(t, static(200, tt.body))
			if err := tt.call(c); err != nil {
				t.Fatal(err)
			}
			r := ts.last(t)
			if r.Method != tt.method || r.Path != tt.path || r.RawQuery != tt.wantQuery {
				t.Errorf("request = %s %s?%s, want %s %s?%s", r.Method, r.Path, r.RawQuery, tt.method, tt.path, tt.wantQuery)
			}
			checkAuthHeaders(t, r)
			if tt.wantBody != "" {
				checkJSONPost(t, r, tt.path)
				jsonEqual(t, r.Body, tt.wantBody)
			}
		})
	}
}

func TestRoomErrors(t *testing.T) {
	ctx := context.Background()
	notFound := `{"success":false,"error":"The required \"roomId\" or \"roomName\" param provided does not match any channel [error-room-not-found]","errorType":"error-room-not-found"}`
	c, _ := newServer(t, static(400, notFound))
	if _, err := c.ChannelInfo(ctx, admin, "nope"); !IsRoomNotFound(err) || IsForbidden(err) || IsNotFound(err) {
		t.Errorf("channel not found: %v", err)
	}
	for _, body := range []string{`{"success":false,"error":"Team not found"}`, `{"success":false,"error":"team-does-not-exist"}`} {
		c, _ := newServer(t, static(400, body))
		if _, err := c.TeamInfo(ctx, admin, "Nope"); !IsRoomNotFound(mustError(t, err)) {
			t.Errorf("%s: not IsRoomNotFound: %v", body, err)
		}
	}
	c, _ = newServer(t, static(400, `{"success":false,"error":"User is not in this room [error-user-not-in-room]","errorType":"error-user-not-in-room","details":{"method":"removeUserFromRoom"}}`))
	if err := c.ChannelKick(ctx, admin, "r1", "u1"); !IsNotMember(err) || IsRoomNotFound(err) {
		t.Errorf("not in room: %v", err)
	}
	c, _ = newServer(t, static(400, `{"success":false,"error":"member-does-not-exist"}`))
	if err := c.TeamRemoveMember(ctx, admin, "t1", "u1"); !IsNotMember(err) {
		t.Errorf("member does not exist: %v", err)
	}
	// Refusals name the permission to grant.
	c, _ = newServer(t, static(400, `{"success":false,"error":"Not allowed [error-not-allowed]","errorType":"error-not-allowed","details":{"method":"addUsersToRoom"}}`))
	err := c.GroupInvite(ctx, admin, "g1", "u1")
	if !IsForbidden(err) || MissingPermission(err) != "add-user-to-joined-room" {
		t.Errorf("group invite refusal: %v, permission %q", err, MissingPermission(err))
	}
	c, _ = newServer(t, static(403, `{"success":false,"error":"forbidden"}`))
	if err := c.TeamAddMember(ctx, admin, "t1", "u1"); !IsForbidden(err) || MissingPermission(err) != "edit-team-member" {
		t.Errorf("team refusal: %v", err)
	}
	// A 429 is reported with its wait, never retried.
	c, ts := newServer(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("X-RateLimit-Reset", "1748779230000")
		reply(w, 429, `{"success":false,"error":"Error, too many requests. Please slow down. You must wait 30 seconds before trying this endpoint again. [error-too-many-requests]"}`)
	})
	_, _, err = c.ChannelMembers(ctx, admin, "r1", "bob")
	if d, limited := IsRateLimited(err); !limited || d <= 0 || ts.hits() != 1 {
		t.Errorf("429: %v (wait %v, %d requests)", err, d, ts.hits())
	}
	// Arguments are checked before anything is sent.
	for _, err := range []error{
		c.ChannelInvite(ctx, admin, "", "u1"), c.GroupKick(ctx, admin, "g1", ""), c.TeamAddMember(ctx, admin, "", "u1"),
		c.TeamRemoveMember(ctx, admin, "t1", ""),
	} {
		if mustError(t, err).Status != 0 {
			t.Errorf("invalid argument sent: %v", err)
		}
	}
	if _, err := c.GroupInfo(ctx, admin, ""); err == nil {
		t.Error("empty name accepted")
	}
	if ts.hits() != 1 {
		t.Errorf("%d requests, want 1", ts.hits())
	}
}

func TestRoomBadResponses(t *testing.T) {
	ctx := context.Background()
	c, _ := newServer(t, static(200, `{"success":true}`))
	if _, err := c.ChannelInfo(ctx, admin, "x"); mustError(t, err).Status != 200 {
		t.Errorf("missing channel: %v", err)
	}
	if _, _, err := c.TeamMembers(ctx, admin, "t1", "x"); err == nil {
		t.Error("missing members accepted")
	}
	if _, err := c.TeamInfo(ctx, admin, "x"); err == nil {
		t.Error("missing teamInfo accepted")
	}
}

// FuzzRoomAnswers: whatever Rocket.Chat (or something in its place)
// answers to the room and team calls, the client returns data or an
// *Error, never panics, and never answers a member or room without an id.
func FuzzRoomAnswers(f *testing.F) {
	for _, s := range []string{
		`{"channel":{"_id":"r1","name":"sales","t":"c"},"success":true}`,
		`{"group":{"_id":"g1"},"success":true}`,
		`{"teamInfo":{"_id":"t1","roomId":"m1","type":"1"},"success":true}`,
		`{"members":[{"_id":"u1","username":"bob"},{"user":{"_id":"u2"}}],"total":-5,"success":true}`,
		`{"members":null,"success":true}`, `{"members":"x","success":true}`, `{"channel":[],"success":true}`,
		`{"success":false,"error":"team-does-not-exist"}`, `{"success":true}`, `null`, `[]`, `{"teamInfo":{"_id":1}}`,
	} {
		f.Add(200, s)
	}
	f.Add(400, `{"success":false,"error":"x [error-room-not-found]","errorType":"error-room-not-found"}`)
	f.Fuzz(func(t *testing.T, status int, body string) {
		if status < 200 || status > 599 {
			status = 200
		}
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reply(w, status, body) }))
		defer ts.Close()
		c, err := New(Options{BaseURL: ts.URL})
		if err != nil {
			t.Fatal(err)
		}
		c.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
		ctx := context.Background()
		check := func(err error) {
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %T %v is not *Error", err, err)
				}
			}
		}
		r, err := c.ChannelInfo(ctx, admin, "x")
		check(err)
		if err == nil && r.ID == "" {
			t.Fatal("a room without _id")
		}
		ti, err := c.TeamInfo(ctx, admin, "x")
		check(err)
		if err == nil && (ti.ID == "" || ti.RoomID == "") {
			t.Fatal("a team without _id or roomId")
		}
		for _, list := range []func() ([]Member, int, error){
			func() ([]Member, int, error) { return c.ChannelMembers(ctx, admin, "r", "x") },
			func() ([]Member, int, error) { return c.TeamMembers(ctx, admin, "t", "x") },
		} {
			_, _, err := list()
			check(err)
		}
		check(c.TeamAddMember(ctx, admin, "t", "u"))
	})
}
