package rcemu

import (
	"cmp"
	"maps"
	"slices"
	"strings"
)

// The room and team endpoints rcsso's rooms sync uses (provisioning.rooms),
// as Rocket.Chat serves them (internal/rcemu/openapi/rooms.yaml):
// channels.info/invite/kick/members (RocketChat/Rocket.Chat
// apps/meteor/app/api/server/v1/channels.ts @062f17bfbabdbe8de97f9fed53cb30c940a7e62f),
// groups.info/invite/kick/members (apps/meteor/server/api/v1/groups.ts
// @575c16319eae1eecd364f524c4d98459f7274f6c) and
// teams.info/addMembers/members/removeMember (apps/meteor/server/api/v1/teams.ts
// @943c405a707027abff2993401fa56294a9e06cc1, the Team service in
// apps/meteor/server/services/team/service.ts
// @ed3fd2bd4722e7eadd3f797a7bcd1b5ef0e09444).

func (s *Server) roomRoutes() map[string]*route {
	get := func(h handlerFunc) *route { return &route{auth: true, methods: map[string]handlerFunc{"GET": h}} }
	post := func(h handlerFunc) *route { return &route{auth: true, methods: map[string]handlerFunc{"POST": h}} }
	return map[string]*route{
		"channels.info":      get(s.handleChannelsInfo),
		"channels.invite":    post(s.handleChannelsInvite),
		"channels.kick":      post(s.handleChannelsKick),
		"channels.members":   get(s.handleChannelsMembers),
		"groups.info":        get(s.handleGroupsInfo),
		"groups.invite":      post(s.handleGroupsInvite),
		"groups.kick":        post(s.handleGroupsKick),
		"groups.members":     get(s.handleGroupsMembers),
		"teams.info":         get(s.handleTeamsInfo),
		"teams.addMembers":   post(s.handleTeamsAddMembers),
		"teams.members":      get(s.handleTeamsMembers),
		"teams.removeMember": post(s.handleTeamsRemoveMember),
	}
}

// params is the request's parameters: the query of a GET (first values),
// the JSON body of a POST. Rocket.Chat tests presence with `'roomId' in
// params`.
func (c *call) params() map[string]any {
	if c.r.Method != "GET" {
		return c.body
	}
	m := make(map[string]any, len(c.query))
	for k, v := range c.query {
		if len(v) > 0 {
			m[k] = v[0]
		}
	}
	return m
}

func has(m map[string]any, k string) bool { _, ok := m[k]; return ok }

// roomDoc is the room object of channels.info, channels.invite, groups.info…
// (internal/rcemu/openapi/rooms.yaml; composed in RocketChat/Rocket.Chat
// apps/meteor/app/api/server/v1/channels.ts
// @062f17bfbabdbe8de97f9fed53cb30c940a7e62f: _id, name, fname, t, msgs,
// usersCount, u, customFields, broadcast, encrypted, ts, ro, default, sysMes,
// _updatedAt; topic and lm when set). s.mu must be held.
func (s *Server) roomDoc(r *room) map[string]any {
	m := map[string]any{
		"_id": r.id, "name": r.name, "fname": r.name, "t": r.t, "msgs": r.msgCount, "usersCount": len(r.subs),
		"customFields": map[string]any{}, "broadcast": r.broadcast, "encrypted": false, "ts": isoTime(r.createdAt),
		"ro": false, "default": r.isDefault, "sysMes": true, "_updatedAt": isoTime(r.updatedAt),
	}
	if r.topic != "" {
		m["topic"] = r.topic
	}
	if !r.lm.IsZero() {
		m["lm"] = isoTime(r.lm)
	}
	if u := s.st.users[r.creator]; u != nil {
		m["u"] = map[string]any{"_id": u.id, "username": u.username}
	}
	if r.teamID != "" {
		m["teamId"] = r.teamID
		if r.teamMain {
			m["teamMain"] = true
		}
	}
	if r.archived {
		m["archived"] = true
	}
	return m
}

// findChannel is findChannelByIdOrName (RocketChat/Rocket.Chat
// apps/meteor/app/api/server/v1/channels.ts
// @062f17bfbabdbe8de97f9fed53cb30c940a7e62f): by roomId when the parameter is
// present, else by roomName; anything but a public channel is
// error-room-not-found, an archived one error-room-archived when
// checkArchived. s.mu must be held.
func (s *Server) findChannel(p map[string]any, checkArchived bool) (*room, *reply) {
	var r *room
	switch {
	case has(p, "roomId"):
		r = s.rooms.byIDOrName(str(p, "roomId"), "", true)
	case has(p, "roomName"):
		r = s.rooms.byIDOrName("", str(p, "roomName"), false)
	}
	if r == nil || r.t != "c" {
		rep := meteorFailure("error-room-not-found", `The required "roomId" or "roomName" param provided does not match any channel`, nil)
		return nil, &rep
	}
	if checkArchived && r.archived {
		rep := meteorFailure("error-room-archived", "The channel, "+r.name+", is archived", nil)
		return nil, &rep
	}
	return r, nil
}

// groupFromParams is getRoomFromParams (RocketChat/Rocket.Chat
// apps/meteor/server/api/v1/groups.ts
// @575c16319eae1eecd364f524c4d98459f7274f6c): roomId or roomName must be given
// (error-room-param-not-provided); anything but a private group is
// error-room-not-found. s.mu must be held.
func (s *Server) groupFromParams(p map[string]any) (*room, *reply) {
	if (!has(p, "roomId") && !has(p, "roomName")) || (has(p, "roomId") && str(p, "roomId") == "" && has(p, "roomName") && str(p, "roomName") == "") {
		rep := meteorFailure("error-room-param-not-provided", `The parameter "roomId" or "roomName" is required`, nil)
		return nil, &rep
	}
	r := s.rooms.byIDOrName(str(p, "roomId"), str(p, "roomName"), has(p, "roomId"))
	if r == nil || r.t != "p" {
		rep := meteorFailure("error-room-not-found", `The required "roomId" or "roomName" param provided does not match any group`, nil)
		return nil, &rep
	}
	return r, nil
}

// findGroup is findPrivateGroupByIdOrName (RocketChat/Rocket.Chat
// apps/meteor/server/api/v1/groups.ts
// @575c16319eae1eecd364f524c4d98459f7274f6c): groupFromParams, then a caller
// who cannot access the group (canAccessRoom: in practice, who is not a
// member) gets error-room-not-found as well. s.mu must be held.
func (s *Server) findGroup(c *call, p map[string]any, checkArchived bool) (*room, *reply) {
	r, rep := s.groupFromParams(p)
	if rep != nil {
		return nil, rep
	}
	if !s.canAccessRoom(r, s.st.users[c.userID]) {
		rep := meteorFailure("error-room-not-found", `The required "roomId" or "roomName" param provided does not match any group`, nil)
		return nil, &rep
	}
	if checkArchived && r.archived {
		rep := meteorFailure("error-room-archived", "The private group, "+r.name+", is archived", nil)
		return nil, &rep
	}
	return r, nil
}

// usersFromParams is getUserListFromParams (RocketChat/Rocket.Chat
// apps/meteor/app/api/server/helpers/getUserFromParams.ts
// @131edd10a2fe3dce3b8e682978f8801d33a8a46c): userId/username/user plus
// userIds/usernames, deduplicated; none given is
// error-users-params-not-provided; unknown ones are left out. s.mu must be
// held.
func (s *Server) usersFromParams(p map[string]any) ([]*user, *reply) {
	sole := cmp.Or(str(p, "userId"), str(p, "username"), str(p, "user"))
	var list []string
	for _, k := range []string{"userIds", "usernames"} {
		if arr, ok := p[k].([]any); ok {
			for _, v := range arr {
				if name, ok := v.(string); ok {
					list = append(list, name)
				}
			}
			break
		}
	}
	list = append(list, sole)
	list = slices.DeleteFunc(list, func(v string) bool { return v == "" })
	slices.Sort(list)
	list = slices.Compact(list)
	if len(list) == 0 {
		rep := meteorFailure("error-users-params-not-provided", `Please provide "userId" or "username" or "userIds" or "usernames" as param`, nil)
		return nil, &rep
	}
	byID := has(p, "userIds") || str(p, "userId") != ""
	var out []*user
	for _, v := range list {
		var u *user
		if byID {
			u = s.st.users[v]
		} else {
			u = s.st.findForLogin("username", v)
		}
		if u != nil {
			out = append(out, u)
		}
	}
	return out, nil
}

// userFromParams is getUserFromParams (RocketChat/Rocket.Chat
// apps/meteor/app/api/server/helpers/getUserFromParams.ts
// @131edd10a2fe3dce3b8e682978f8801d33a8a46c): by userId,
// else username, else user (case-insensitive); none given is
// error-user-param-not-provided, an unknown one error-invalid-user. s.mu
// must be held.
func (s *Server) userFromParams(p map[string]any) (*user, *reply) {
	var u *user
	switch {
	case strings.TrimSpace(str(p, "userId")) != "":
		u = s.st.users[str(p, "userId")]
	case strings.TrimSpace(str(p, "username")) != "":
		u = s.st.findForLogin("username", str(p, "username"))
	case strings.TrimSpace(str(p, "user")) != "":
		u = s.st.findForLogin("username", str(p, "user"))
	default:
		rep := meteorFailure("error-user-param-not-provided", `The required "userId" or "username" param was not provided`, nil)
		return nil, &rep
	}
	if u == nil {
		rep := meteorFailure("error-invalid-user", `The required "userId" or "username" param provided does not match any users`, nil)
		return nil, &rep
	}
	return u, nil
}

// addUsers is addUsersToRoomMethod (RocketChat/Rocket.Chat
// apps/meteor/app/lib/server/methods/addUsersToRoom.ts
// @0ff77641f6116094514c9e70741427bc3175c909): the caller may add users to
// a room they are in with add-user-to-joined-room (room roles count), to
// any public channel with add-user-to-any-c-room, to any private group
// with add-user-to-any-p-room (held by no role by default); otherwise
// error-not-allowed "Not allowed". A user who is in the room already is
// left alone (Rocket.Chat only shows the caller "Username_is_already_in_here").
// s.mu must be held.
func (s *Server) addUsers(c *call, r *room, users []*user) *reply {
	caller := s.st.users[c.userID]
	can := (r.subs[c.userID] != nil && s.roomPermission(caller, "add-user-to-joined-room", r)) ||
		(r.t == "c" && s.hasPermission(caller, "add-user-to-any-c-room")) ||
		(r.t == "p" && s.hasPermission(caller, "add-user-to-any-p-room"))
	if !can {
		rep := s.refusal("error-not-allowed", "Not allowed", map[string]any{"method": "addUsersToRoom"})
		return &rep
	}
	for _, u := range users {
		s.addUserToRoom(r, u, c.userID, c.now)
	}
	return nil
}

// kick is removeUserFromRoomMethod (RocketChat/Rocket.Chat
// apps/meteor/server/methods/removeUserFromRoom.ts
// @02dbedfbceefa2cfb28540304c5c9f2edf7569aa): remove-user (room roles
// count) or error-not-allowed; without kick-user-from-any-c-room (public)
// or kick-user-from-any-p-room (private) the caller must be able to access
// the room (error-room-not-found) and the user must be in it
// (error-user-not-in-room); the room's last owner cannot be removed
// (error-you-are-last-owner). With kick-user-from-any-* a user who is not
// in the room is "removed" without an error. s.mu must be held.
func (s *Server) kick(c *call, r *room, u *user) *reply {
	caller := s.st.users[c.userID]
	if !s.roomPermission(caller, "remove-user", r) {
		rep := s.refusal("error-not-allowed", "Not allowed", map[string]any{"method": "removeUserFromRoom"})
		return &rep
	}
	kickAny := s.roomPermission(caller, "kick-user-from-any-"+r.t+"-room", r)
	if !kickAny && !s.canAccessRoom(r, caller) {
		rep := meteorFailure("error-room-not-found", `The required "roomId" or "roomName" param provided does not match any group`, nil)
		return &rep
	}
	sub := r.subs[u.id]
	if !kickAny && sub == nil {
		rep := meteorFailure("error-user-not-in-room", "User is not in this room", map[string]any{"method": "removeUserFromRoom"})
		return &rep
	}
	if sub != nil && slices.Contains(sub.roles, "owner") {
		owners := 0
		for _, o := range r.subs {
			if slices.Contains(o.roles, "owner") {
				owners++
			}
		}
		if owners == 1 {
			rep := meteorFailure("error-you-are-last-owner", "You are the last owner. Please set new owner before leaving the room.", map[string]any{"method": "removeUserFromRoom"})
			return &rep
		}
	}
	s.removeUserFromRoom(r, u.id, c.now)
	return nil
}

// members is findUsersOfRoom (RocketChat/Rocket.Chat
// apps/meteor/server/lib/findUsersOfRoom.ts
// @0716b16726b26cf631a801fb90abca44a92c791d): the active users subscribed
// to the room whose Accounts_SearchFields match filter, sorted by
// username, one page of them (offset, count: c.pagination) and the total.
// s.mu must be held.
func (s *Server) members(r *room, filter string, offset, count int) reply {
	var list []*user
	for uid := range r.subs {
		if u := s.st.users[uid]; u != nil && u.active && s.matchFilter(u, filter) {
			list = append(list, u)
		}
	}
	slices.SortFunc(list, func(a, b *user) int { return strings.Compare(a.username, b.username) })
	total := len(list)
	page := []any{}
	for i := offset; i < total && len(page) < count; i++ {
		u := list[i]
		m := map[string]any{"_id": u.id, "username": u.username, "status": u.status, "_updatedAt": isoTime(u.updatedAt)}
		if u.name != "" {
			m["name"] = u.name
		}
		if u.nickname != "" {
			m["nickname"] = u.nickname
		}
		page = append(page, m)
	}
	return success(map[string]any{"members": page, "count": len(page), "offset": offset, "total": total})
}

// ---- channels ----

// handleChannelsInfo is GET /api/v1/channels.info: the channel, archived ones
// included; no membership needed (RocketChat/Rocket.Chat
// apps/meteor/app/api/server/v1/channels.ts
// @062f17bfbabdbe8de97f9fed53cb30c940a7e62f).
func (s *Server) handleChannelsInfo(c *call) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, rep := s.findChannel(c.params(), false)
	if rep != nil {
		return *rep
	}
	return success(map[string]any{"channel": s.roomDoc(r)})
}

// handleChannelsInvite is POST /api/v1/channels.invite (RocketChat/Rocket.Chat
// apps/meteor/app/api/server/v1/channels.ts
// @062f17bfbabdbe8de97f9fed53cb30c940a7e62f): no known user in the parameters
// is 400 {error:"invalid-user-invite-list", errorType:"Cannot invite if no
// users are provided"} (API.v1.failure's arguments in that order); then
// addUsersToRoomMethod.
func (s *Server) handleChannelsInvite(c *call) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := c.params()
	r, rep := s.findChannel(p, true)
	if rep != nil {
		return *rep
	}
	users, rep := s.usersFromParams(p)
	if rep != nil {
		return *rep
	}
	if len(users) == 0 {
		return reply{status: 400, body: map[string]any{"success": false, "error": "invalid-user-invite-list", "errorType": "Cannot invite if no users are provided"}}
	}
	if rep := s.addUsers(c, r, users); rep != nil {
		return *rep
	}
	return success(map[string]any{"channel": s.roomDoc(r)})
}

// handleChannelsKick is POST /api/v1/channels.kick (RocketChat/Rocket.Chat
// apps/meteor/app/api/server/v1/channels.ts
// @062f17bfbabdbe8de97f9fed53cb30c940a7e62f): findChannelByIdOrName,
// getUserFromParams, removeUserFromRoomMethod.
func (s *Server) handleChannelsKick(c *call) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := c.params()
	r, rep := s.findChannel(p, true)
	if rep != nil {
		return *rep
	}
	u, rep := s.userFromParams(p)
	if rep != nil {
		return *rep
	}
	if rep := s.kick(c, r, u); rep != nil {
		return *rep
	}
	return success(map[string]any{"channel": s.roomDoc(r)})
}

// handleChannelsMembers is GET /api/v1/channels.members
// (RocketChat/Rocket.Chat apps/meteor/app/api/server/v1/channels.ts
// @062f17bfbabdbe8de97f9fed53cb30c940a7e62f): archived channels too; a
// broadcast channel needs view-broadcast-member-list (403 otherwise); filter
// and pagination as findUsersOfRoom.
func (s *Server) handleChannelsMembers(c *call) reply {
	offset, count := c.pagination()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := c.params()
	r, rep := s.findChannel(p, false)
	if rep != nil {
		return *rep
	}
	if r.broadcast && !s.roomPermission(s.st.users[c.userID], "view-broadcast-member-list", r) {
		return s.forbidden()
	}
	return s.members(r, str(p, "filter"), offset, count)
}

// ---- groups ----

// handleGroupsInfo is GET /api/v1/groups.info (RocketChat/Rocket.Chat
// apps/meteor/server/api/v1/groups.ts
// @575c16319eae1eecd364f524c4d98459f7274f6c): only for a caller who can access
// the group; to anyone else it does not exist.
func (s *Server) handleGroupsInfo(c *call) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, rep := s.findGroup(c, c.params(), false)
	if rep != nil {
		return *rep
	}
	return success(map[string]any{"group": s.roomDoc(r)})
}

// handleGroupsInvite is POST /api/v1/groups.invite (RocketChat/Rocket.Chat
// apps/meteor/server/api/v1/groups.ts
// @575c16319eae1eecd364f524c4d98459f7274f6c): roomId or roomName
// (error-room-param-not-provided), found by Rooms.findOneByIdOrName whatever
// the caller's access; no known user is error-empty-invite-list; then
// addUsersToRoomMethod (add-user-to-joined-room for a member of the group,
// add-user-to-any-p-room otherwise).
func (s *Server) handleGroupsInvite(c *call) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := c.params()
	idOrName := cmp.Or(str(p, "roomId"), str(p, "roomName"))
	if strings.TrimSpace(idOrName) == "" {
		return meteorFailure("error-room-param-not-provided", `The parameter "roomId" or "roomName" is required`, nil)
	}
	r := s.rooms.rooms[idOrName]
	if r == nil {
		r = s.rooms.byIDOrName("", idOrName, false)
	}
	if r == nil || r.t != "p" {
		return meteorFailure("error-room-not-found", `The required "roomId" or "roomName" param provided does not match any group`, nil)
	}
	users, rep := s.usersFromParams(p)
	if rep != nil {
		return *rep
	}
	if len(users) == 0 {
		return meteorFailure("error-empty-invite-list", "Cannot invite if no valid users are provided", nil)
	}
	if rep := s.addUsers(c, r, users); rep != nil {
		return *rep
	}
	return success(map[string]any{"group": s.roomDoc(r)})
}

// handleGroupsKick is POST /api/v1/groups.kick (RocketChat/Rocket.Chat
// apps/meteor/server/api/v1/groups.ts
// @575c16319eae1eecd364f524c4d98459f7274f6c): getRoomFromParams without an
// access check, getUserFromParams, then removeUserFromRoomMethod (which checks
// access unless the caller holds kick-user-from-any-p-room). {success:true}
// only.
func (s *Server) handleGroupsKick(c *call) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := c.params()
	r, rep := s.groupFromParams(p)
	if rep != nil {
		return *rep
	}
	u, rep := s.userFromParams(p)
	if rep != nil {
		return *rep
	}
	if rep := s.kick(c, r, u); rep != nil {
		return *rep
	}
	return success(nil)
}

// handleGroupsMembers is GET /api/v1/groups.members (RocketChat/Rocket.Chat
// apps/meteor/server/api/v1/groups.ts
// @575c16319eae1eecd364f524c4d98459f7274f6c): findPrivateGroupByIdOrName (the
// caller must be able to access the group, and it must not be archived), the
// broadcast check, findUsersOfRoom.
func (s *Server) handleGroupsMembers(c *call) reply {
	offset, count := c.pagination()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := c.params()
	r, rep := s.findGroup(c, p, true)
	if rep != nil {
		return *rep
	}
	if r.broadcast && !s.roomPermission(s.st.users[c.userID], "view-broadcast-member-list", r) {
		return s.forbidden()
	}
	return s.members(r, str(p, "filter"), offset, count)
}

// ---- teams ----

// teamFromParams is getTeamByIdOrName (RocketChat/Rocket.Chat
// apps/meteor/server/api/v1/teams.ts
// @943c405a707027abff2993401fa56294a9e06cc1): a non-empty teamId, else a
// non-empty teamName; nil when none. s.mu must be held.
func (s *Server) teamFromParams(p map[string]any) *team {
	if id := str(p, "teamId"); id != "" {
		return s.rooms.teams[id]
	}
	if name := str(p, "teamName"); name != "" {
		if id, ok := s.rooms.teamByName[name]; ok {
			return s.rooms.teams[id]
		}
	}
	return nil
}

// teamTarget checks that exactly one of teamId and teamName is given, as
// the ajv schemas' oneOf in packages/rest-typings/src/v1/teams
// (TeamsMembersProps.ts @91388d883fe77c7268f5b7eeea61d3b551d0cf3d,
// TeamsAddMembersProps.ts @6446ba5d765eb4b6cd852b25ed3f25f3a2edb678,
// TeamsRemoveMemberProps.ts @a213b5870c44ee839da9d5ea5f13aadfc858b9f3) do,
// and that no other key than allowed is present (additionalProperties:
// false); "" when the parameters pass.
func teamTarget(p map[string]any, allowed ...string) string {
	switch {
	case has(p, "teamId") && has(p, "teamName"):
		return "must match exactly one schema in oneOf"
	case !has(p, "teamId") && !has(p, "teamName"):
		return "must have required property 'teamId'"
	}
	for k := range p {
		if k != "teamId" && k != "teamName" && !slices.Contains(allowed, k) {
			return "must NOT have additional properties"
		}
	}
	return ""
}

// teamDoc is teams.info's teamInfo (internal/rcemu/openapi/rooms.yaml;
// RocketChat/Rocket.Chat apps/meteor/server/api/v1/teams.ts
// @943c405a707027abff2993401fa56294a9e06cc1): _id, name, type, createdAt,
// createdBy {_id, username}, _updatedAt, roomId. s.mu must be held.
func (s *Server) teamDoc(tm *team) map[string]any {
	by := map[string]any{"_id": tm.createdBy}
	if u := s.st.users[tm.createdBy]; u != nil {
		by["username"] = u.username
	}
	return map[string]any{"_id": tm.id, "name": tm.name, "type": tm.typ, "createdAt": isoTime(tm.createdAt),
		"createdBy": by, "_updatedAt": isoTime(tm.updatedAt), "roomId": tm.roomID}
}

// handleTeamsInfo is GET /api/v1/teams.info (RocketChat/Rocket.Chat
// apps/meteor/server/api/v1/teams.ts
// @943c405a707027abff2993401fa56294a9e06cc1): an unknown team is 400 "Team not
// found"; a caller who can neither access the team's main room nor holds
// view-all-teams gets 403.
func (s *Server) handleTeamsInfo(c *call) reply {
	p := c.params()
	if msg := teamTarget(p); msg != "" {
		return invalidParams(msg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tm := s.teamFromParams(p)
	if tm == nil {
		return failure("Team not found")
	}
	r := s.rooms.rooms[tm.roomID]
	if r == nil {
		return failure("Room not found")
	}
	caller := s.st.users[c.userID]
	if !s.canAccessRoom(r, caller) && !s.hasPermission(caller, "view-all-teams") {
		return s.forbidden()
	}
	return success(map[string]any{"teamInfo": s.teamDoc(tm)})
}

// handleTeamsAddMembers is POST /api/v1/teams.addMembers
// (RocketChat/Rocket.Chat apps/meteor/server/api/v1/teams.ts
// @943c405a707027abff2993401fa56294a9e06cc1): body {teamId|teamName,
// members:[{userId, roles?}]} (ajv: at least one member, no other keys); an
// unknown team is 400 "team-does-not-exist"; the caller needs add-team-member
// or edit-team-member (room roles of the team's main room count) or gets 403.
// Team.addMembers subscribes each user to the main room (addUserToRoom:
// nothing for one who is subscribed already), which makes them a team member,
// and sets the roles given. An unknown userId is 400 "invalid-user" here
// (Rocket.Chat fails inside addUserToRoom with an unhelpful error).
func (s *Server) handleTeamsAddMembers(c *call) reply {
	p := c.params()
	if msg := teamTarget(p, "members"); msg != "" {
		return invalidParams(msg)
	}
	arr, ok := p["members"].([]any)
	switch {
	case !has(p, "members"):
		return invalidParams("must have required property 'members'")
	case !ok:
		return invalidParams("must be array")
	case len(arr) == 0:
		return invalidParams("must NOT have fewer than 1 items")
	}
	type member struct {
		userID string
		roles  []string
	}
	var members []member
	for _, v := range arr {
		m, ok := v.(map[string]any)
		if !ok {
			return invalidParams("must be object")
		}
		sc := &schema{props: []prop{{name: "userId", kind: kString}, {name: "roles", kind: kStringArray}}, required: []string{"userId"}}
		if msg := sc.validate(m); msg != "" {
			return invalidParams(msg)
		}
		mm := member{userID: str(m, "userId")}
		if roles, ok := m["roles"].([]any); ok {
			for _, r := range roles {
				mm.roles = append(mm.roles, r.(string))
			}
		}
		members = append(members, mm)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tm := s.teamFromParams(p)
	if tm == nil {
		return failure("team-does-not-exist")
	}
	r := s.rooms.rooms[tm.roomID]
	caller := s.st.users[c.userID]
	if !s.roomPermission(caller, "add-team-member", r) && !s.roomPermission(caller, "edit-team-member", r) {
		return s.forbidden()
	}
	for _, m := range members {
		u := s.st.users[m.userID]
		if u == nil {
			return failure("invalid-user")
		}
		if r != nil {
			s.addUserToRoom(r, u, c.userID, c.now)
		}
		if tmm := tm.members[u.id]; tmm != nil && m.roles != nil {
			tmm.roles = slices.Clone(m.roles)
		}
	}
	return success(nil)
}

// handleTeamsMembers is GET /api/v1/teams.members (RocketChat/Rocket.Chat
// apps/meteor/server/api/v1/teams.ts
// @943c405a707027abff2993401fa56294a9e06cc1), with Team.members
// (apps/meteor/server/services/team/service.ts
// @ed3fd2bd4722e7eadd3f797a7bcd1b5ef0e09444): query {teamId|teamName,
// username?, name?, status?, count?, offset?} (ajv, no other keys); an unknown
// team is 400 "team-does-not-exist"; a caller who is neither a member nor
// holds view-all-teams gets an empty list, not an error. username and name are
// escaped case-insensitive "contains" filters over active users.
func (s *Server) handleTeamsMembers(c *call) reply {
	p := c.params()
	if msg := teamTarget(p, "username", "name", "status", "count", "offset"); msg != "" {
		return invalidParams(msg)
	}
	offset, count := c.pagination()
	s.mu.Lock()
	defer s.mu.Unlock()
	tm := s.teamFromParams(p)
	if tm == nil {
		return failure("team-does-not-exist")
	}
	caller := s.st.users[c.userID]
	canSeeAll := s.roomPermission(caller, "view-all-teams", s.rooms.rooms[tm.roomID])
	if tm.members[c.userID] == nil && !canSeeAll {
		return success(map[string]any{"members": []any{}, "total": 0, "count": 0, "offset": offset})
	}
	contains := func(v, sub string) bool { return strings.Contains(strings.ToLower(v), strings.ToLower(sub)) }
	var ids []string
	for _, uid := range slices.Sorted(maps.Keys(tm.members)) {
		u := s.st.users[uid]
		if u == nil || !u.active || (str(p, "username") != "" && !contains(u.username, str(p, "username"))) ||
			(str(p, "name") != "" && !contains(u.name, str(p, "name"))) {
			continue
		}
		ids = append(ids, uid)
	}
	slices.SortStableFunc(ids, func(a, b string) int { return tm.members[a].createdAt.Compare(tm.members[b].createdAt) })
	page := []any{}
	for i := offset; i < len(ids) && len(page) < count; i++ {
		u, m := s.st.users[ids[i]], tm.members[ids[i]]
		by := map[string]any{"_id": m.createdBy}
		if b := s.st.users[m.createdBy]; b != nil {
			by["username"] = b.username
		}
		rec := map[string]any{
			"user":      map[string]any{"_id": u.id, "username": u.username, "name": u.name, "status": u.status, "settings": settingsJSON(u.settings)},
			"createdBy": by, "createdAt": isoTime(m.createdAt),
		}
		if m.roles != nil {
			rec["roles"] = slices.Clone(m.roles)
		}
		page = append(page, rec)
	}
	return success(map[string]any{"members": page, "total": len(ids), "count": len(page), "offset": offset})
}

// handleTeamsRemoveMember is POST /api/v1/teams.removeMember
// (RocketChat/Rocket.Chat apps/meteor/server/api/v1/teams.ts
// @943c405a707027abff2993401fa56294a9e06cc1), with Team.removeMembers
// (apps/meteor/server/services/team/service.ts
// @ed3fd2bd4722e7eadd3f797a7bcd1b5ef0e09444): body {teamId|teamName, userId,
// rooms?}; an unknown team is 400 "team-does-not-exist"; the caller needs
// edit-team-member (403); an unknown or deactivated user is 400
// "invalid-user", one who is not a member "member-does-not-exist", the team's
// last owner "last-owner-can-not-be-removed". The member leaves the team's
// main room and the team rooms listed in rooms.
func (s *Server) handleTeamsRemoveMember(c *call) reply {
	p := c.params()
	if msg := teamTarget(p, "userId", "rooms"); msg != "" {
		return invalidParams(msg)
	}
	sc := &schema{props: []prop{{name: "teamId", kind: kString}, {name: "teamName", kind: kString}, {name: "userId", kind: kString},
		{name: "rooms", kind: kStringArray}}, required: []string{"userId"}}
	if msg := sc.validate(p); msg != "" {
		return invalidParams(msg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tm := s.teamFromParams(p)
	if tm == nil {
		return failure("team-does-not-exist")
	}
	main := s.rooms.rooms[tm.roomID]
	if !s.roomPermission(s.st.users[c.userID], "edit-team-member", main) {
		return s.forbidden()
	}
	u := s.st.users[str(p, "userId")]
	if u == nil || !u.active {
		return failure("invalid-user")
	}
	m := tm.members[u.id]
	if m == nil {
		return failure("member-does-not-exist")
	}
	if slices.Contains(m.roles, "owner") {
		owners := 0
		for _, o := range tm.members {
			if slices.Contains(o.roles, "owner") {
				owners++
			}
		}
		if owners == 1 {
			return failure("last-owner-can-not-be-removed")
		}
	}
	delete(tm.members, u.id)
	if main != nil {
		s.removeUserFromRoom(main, u.id, c.now)
	}
	if rooms, ok := p["rooms"].([]any); ok {
		for _, v := range rooms {
			if r := s.rooms.rooms[v.(string)]; r != nil && r.teamID == tm.id {
				s.removeUserFromRoom(r, u.id, c.now)
			}
		}
	}
	return success(nil)
}
