package rocketchat

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// Rooms, teams and memberships: the endpoints of rcsso's rooms sync
// (provisioning.rooms). Shapes and errors follow Rocket.Chat's OpenAPI
// (internal/rcemu/openapi/rooms.yaml) and its source:
// RocketChat/Rocket.Chat apps/meteor/app/api/server/v1/channels.ts,
// apps/meteor/server/api/v1/groups.ts, apps/meteor/server/api/v1/teams.ts.
// Every call is made as the service account; none is paced by
// Options.Budget (accounts with api-bypass-rate-limit are not counted by
// Rocket.Chat's limiter), and a 429 is reported (IsRateLimited), never
// retried.

// RoomKind is a kind of membership: a public channel, a private group or a
// team.
type RoomKind string

const (
	// Channel is a public channel (room type "c"; channels.* endpoints).
	Channel RoomKind = "c"
	// PrivateGroup is a private group (room type "p"; groups.* endpoints).
	PrivateGroup RoomKind = "p"
	// Team is a team (teams.* endpoints): membership of its main room.
	Team RoomKind = "t"
)

// Room is the part of a room object rcsso reads (channels.info,
// groups.info).
type Room struct {
	// ID is the room's _id.
	ID string `json:"_id"`
	// Name is the room's name (without "#").
	Name string `json:"name"`
	// Type is "c" (public channel) or "p" (private group).
	Type string `json:"t"`
	// TeamID is set for a room that belongs to a team; TeamMain marks the
	// team's main room.
	TeamID   string `json:"teamId,omitempty"`
	TeamMain bool   `json:"teamMain,omitempty"`
	// Archived rooms accept no new members.
	Archived bool `json:"archived,omitempty"`
}

// TeamInfo is teams.info's teamInfo.
type TeamInfo struct {
	ID   string `json:"_id"`
	Name string `json:"name"`
	// Type is 0 (public) or 1 (private).
	Type int `json:"type"`
	// RoomID is the team's main room.
	RoomID string `json:"roomId"`
}

// Member is one member of a room or team as the *.members endpoints list
// them.
type Member struct {
	ID       string `json:"_id"`
	Username string `json:"username"`
	Name     string `json:"name,omitempty"`
}

// ChannelInfo looks up a public channel by name.
//
// GET /api/v1/channels.info?roomName=… (rooms.yaml; any authenticated
// caller, archived channels included). Errors: an unknown name, or a room
// that is not a public channel, is 400 error-room-not-found →
// IsRoomNotFound; 401 → IsUnauthorized. Retried on transport errors and
// 502/503/504.
func (c *Client) ChannelInfo(ctx context.Context, cr Credentials, name string) (Room, error) {
	return c.roomInfo(ctx, cr, "channels.info", "channel", name)
}

// GroupInfo looks up a private group by name.
//
// GET /api/v1/groups.info?roomName=… (rooms.yaml). Only a caller who can
// access the group (its members) sees it: for anyone else, and for an
// unknown name, it is 400 error-room-not-found → IsRoomNotFound. Retried
// like ChannelInfo.
func (c *Client) GroupInfo(ctx context.Context, cr Credentials, name string) (Room, error) {
	return c.roomInfo(ctx, cr, "groups.info", "group", name)
}

func (c *Client) roomInfo(ctx context.Context, cr Credentials, ep, field, name string) (Room, error) {
	if name == "" {
		return Room{}, invalidArg(ep, "room name is required")
	}
	var out map[string]json.RawMessage
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/v1/" + ep, query: url.Values{"roomName": {name}}, cr: &cr}, &out); err != nil {
		return Room{}, err
	}
	var r Room
	if raw, ok := out[field]; ok {
		if err := json.Unmarshal(raw, &r); err != nil {
			return Room{}, &Error{Endpoint: ep, Status: http.StatusOK, Message: "decode response", Err: err}
		}
	}
	if r.ID == "" {
		return Room{}, badResponse(ep, "response has no "+field+"._id")
	}
	return r, nil
}

// TeamInfo looks up a team by name.
//
// GET /api/v1/teams.info?teamName=… (rooms.yaml). Errors: 400 "Team not
// found" → IsRoomNotFound; 403 when the caller can neither access the
// team's main room nor holds view-all-teams → IsForbidden. Retried like
// ChannelInfo.
func (c *Client) TeamInfo(ctx context.Context, cr Credentials, name string) (TeamInfo, error) {
	const ep = "teams.info"
	if name == "" {
		return TeamInfo{}, invalidArg(ep, "team name is required")
	}
	var out struct {
		TeamInfo TeamInfo `json:"teamInfo"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/v1/teams.info", query: url.Values{"teamName": {name}}, cr: &cr}, &out); err != nil {
		return TeamInfo{}, err
	}
	if out.TeamInfo.ID == "" || out.TeamInfo.RoomID == "" {
		return TeamInfo{}, badResponse(ep, "response has no teamInfo._id or teamInfo.roomId")
	}
	return out.TeamInfo, nil
}

// maxMembersPage bounds the members rcsso reads per call: the lists are
// filtered by username, so a page holds the few whose name contains it.
const maxMembersPage = 100

// ChannelMembers returns the members of public channel roomID whose
// username, name, bio or nickname (Accounts_SearchFields) contain filter,
// case-insensitively: the first page of at most 100 of them and their
// total.
//
// GET /api/v1/channels.members?roomId=…&filter=…&count=100 (rooms.yaml).
// Only active users are listed. Errors: error-room-not-found →
// IsRoomNotFound; 403 for a broadcast channel without
// view-broadcast-member-list. Retried like ChannelInfo.
func (c *Client) ChannelMembers(ctx context.Context, cr Credentials, roomID, filter string) ([]Member, int, error) {
	return c.roomMembers(ctx, cr, "channels.members", roomID, filter)
}

// GroupMembers is ChannelMembers for private group roomID.
//
// GET /api/v1/groups.members (rooms.yaml). The caller must be able to
// access the group (be a member), else error-room-not-found; an archived
// group is error-room-archived.
func (c *Client) GroupMembers(ctx context.Context, cr Credentials, roomID, filter string) ([]Member, int, error) {
	return c.roomMembers(ctx, cr, "groups.members", roomID, filter)
}

func (c *Client) roomMembers(ctx context.Context, cr Credentials, ep, roomID, filter string) ([]Member, int, error) {
	if roomID == "" {
		return nil, 0, invalidArg(ep, "roomID is required")
	}
	q := url.Values{"roomId": {roomID}, "count": {strconv.Itoa(maxMembersPage)}}
	if filter != "" {
		q.Set("filter", filter)
	}
	var out struct {
		Members []Member `json:"members"`
		Total   *int     `json:"total"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/v1/" + ep, query: q, cr: &cr}, &out); err != nil {
		return nil, 0, err
	}
	if out.Members == nil {
		return nil, 0, badResponse(ep, "response has no members")
	}
	total := len(out.Members)
	if out.Total != nil {
		total = *out.Total
	}
	return out.Members, total, nil
}

// TeamMembers returns the members of team teamID whose username contains
// username, case-insensitively: the first page of at most 100 and their
// total.
//
// GET /api/v1/teams.members?teamId=…&username=…&count=100 (rooms.yaml).
// A caller who is neither a member of the team nor holds view-all-teams
// gets an empty list, not an error: rcsso's service account needs
// view-all-teams. Errors: 400 "team-does-not-exist" → IsRoomNotFound.
// Retried like ChannelInfo.
func (c *Client) TeamMembers(ctx context.Context, cr Credentials, teamID, username string) ([]Member, int, error) {
	const ep = "teams.members"
	if teamID == "" {
		return nil, 0, invalidArg(ep, "teamID is required")
	}
	q := url.Values{"teamId": {teamID}, "count": {strconv.Itoa(maxMembersPage)}}
	if username != "" {
		q.Set("username", username)
	}
	var out struct {
		Members []struct {
			User Member `json:"user"`
		} `json:"members"`
		Total *int `json:"total"`
	}
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/v1/teams.members", query: q, cr: &cr}, &out); err != nil {
		return nil, 0, err
	}
	if out.Members == nil {
		return nil, 0, badResponse(ep, "response has no members")
	}
	list := make([]Member, 0, len(out.Members))
	for _, m := range out.Members {
		list = append(list, m.User)
	}
	total := len(list)
	if out.Total != nil {
		total = *out.Total
	}
	return list, total, nil
}

// ChannelInvite adds user userID to public channel roomID (nothing
// happens to a member).
//
// POST /api/v1/channels.invite {"roomId","userId"} (rooms.yaml). The
// caller needs add-user-to-any-c-room, or add-user-to-joined-room and
// membership. Errors: error-room-not-found → IsRoomNotFound;
// error-room-archived; error-not-allowed (9.0: 403 error-forbidden) →
// IsForbidden; "invalid-user-invite-list" for an unknown user. Never
// retried.
func (c *Client) ChannelInvite(ctx context.Context, cr Credentials, roomID, userID string) error {
	return c.roomUser(ctx, cr, "channels.invite", roomID, userID)
}

// GroupInvite adds user userID to private group roomID.
//
// POST /api/v1/groups.invite {"roomId","userId"} (rooms.yaml). The caller
// needs add-user-to-joined-room and membership of the group (or
// add-user-to-any-p-room, which no role holds by default). Errors as
// ChannelInvite ("error-empty-invite-list" for an unknown user).
func (c *Client) GroupInvite(ctx context.Context, cr Credentials, roomID, userID string) error {
	return c.roomUser(ctx, cr, "groups.invite", roomID, userID)
}

// ChannelKick removes user userID from public channel roomID.
//
// POST /api/v1/channels.kick {"roomId","userId"} (rooms.yaml). The caller
// needs remove-user. Without kick-user-from-any-c-room a user who is not
// in the channel is error-user-not-in-room → IsNotMember (with it, no
// error). The room's last owner cannot be removed
// (error-you-are-last-owner). Errors otherwise as ChannelInvite. Never
// retried.
func (c *Client) ChannelKick(ctx context.Context, cr Credentials, roomID, userID string) error {
	return c.roomUser(ctx, cr, "channels.kick", roomID, userID)
}

// GroupKick removes user userID from private group roomID.
//
// POST /api/v1/groups.kick {"roomId","userId"} (rooms.yaml). As
// ChannelKick, with kick-user-from-any-p-room; without it the caller must
// be a member of the group (else error-room-not-found).
func (c *Client) GroupKick(ctx context.Context, cr Credentials, roomID, userID string) error {
	return c.roomUser(ctx, cr, "groups.kick", roomID, userID)
}

func (c *Client) roomUser(ctx context.Context, cr Credentials, ep, roomID, userID string) error {
	if roomID == "" || userID == "" {
		return invalidArg(ep, "roomID and userID are required")
	}
	body := struct {
		RoomID string `json:"roomId"`
		UserID string `json:"userId"`
	}{roomID, userID}
	return c.do(ctx, call{method: http.MethodPost, endpoint: ep, path: "/api/v1/" + ep, body: body, cr: &cr}, nil)
}

// TeamAddMember adds user userID to team teamID (and its main room).
//
// POST /api/v1/teams.addMembers {"teamId","members":[{"userId"}]}
// (rooms.yaml). The caller needs add-team-member or edit-team-member.
// Errors: 400 "team-does-not-exist" → IsRoomNotFound; 403 → IsForbidden.
// Never retried.
func (c *Client) TeamAddMember(ctx context.Context, cr Credentials, teamID, userID string) error {
	const ep = "teams.addMembers"
	if teamID == "" || userID == "" {
		return invalidArg(ep, "teamID and userID are required")
	}
	type member struct {
		UserID string `json:"userId"`
	}
	body := struct {
		TeamID  string   `json:"teamId"`
		Members []member `json:"members"`
	}{teamID, []member{{userID}}}
	return c.do(ctx, call{method: http.MethodPost, endpoint: ep, path: "/api/v1/teams.addMembers", body: body, cr: &cr}, nil)
}

// TeamRemoveMember removes user userID from team teamID (and its main
// room).
//
// POST /api/v1/teams.removeMember {"teamId","userId"} (rooms.yaml). The
// caller needs edit-team-member. Errors: "team-does-not-exist" →
// IsRoomNotFound; "member-does-not-exist" → IsNotMember;
// "last-owner-can-not-be-removed"; "invalid-user" (unknown or deactivated
// user); 403 → IsForbidden. Never retried.
func (c *Client) TeamRemoveMember(ctx context.Context, cr Credentials, teamID, userID string) error {
	const ep = "teams.removeMember"
	if teamID == "" || userID == "" {
		return invalidArg(ep, "teamID and userID are required")
	}
	body := struct {
		TeamID string `json:"teamId"`
		UserID string `json:"userId"`
	}{teamID, userID}
	return c.do(ctx, call{method: http.MethodPost, endpoint: ep, path: "/api/v1/teams.removeMember", body: body, cr: &cr}, nil)
}

// IsRoomNotFound reports whether Rocket.Chat said the room or team does not
// exist (for a private group: or the caller is not in it): errorType
// error-room-not-found (channels.*, groups.*), or the teams.* answers
// "team-does-not-exist" and "Team not found".
func IsRoomNotFound(err error) bool {
	e, ok := asError(err)
	if !ok || e.Status < 400 || e.Status > 499 {
		return false
	}
	if e.ErrorType == "error-room-not-found" {
		return true
	}
	m := strings.TrimSpace(e.Message)
	return m == "team-does-not-exist" || strings.EqualFold(m, "Team not found")
}

// IsNotMember reports whether Rocket.Chat refused to remove someone who is
// not a member: error-user-not-in-room (channels.kick, groups.kick) or
// "member-does-not-exist" (teams.removeMember).
func IsNotMember(err error) bool {
	e, ok := asError(err)
	if !ok || e.Status < 400 || e.Status > 499 {
		return false
	}
	return e.ErrorType == "error-user-not-in-room" || strings.TrimSpace(e.Message) == "member-does-not-exist"
}
