package rcemu

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Rooms, teams and memberships: the subset of Rocket.Chat's rooms,
// subscriptions, team and team_member collections that the endpoints in
// roomsapi.go read and write (rooms.yaml in internal/rcemu/openapi) and
// the web client's chat shows (chat.go: a room's messages live on it). A
// subscription is a user's membership of a room, with its room roles
// (owner, moderator, leader); a team is a room of its own (the team's main
// room, teamMain true) plus a list of team members. In MongoDB mode they
// stay in memory, like settings and permissions. Guarded by Server.mu.
//
// Sources (repository RocketChat/Rocket.Chat):
//
//	[initialData] apps/meteor/server/startup/initialData.ts @0bfd1635564033a54cd326c1eafc5b0177d1fcb0:
//	              the channel GENERAL ('c', name general, default: true, no creator, no
//	              subscriptions) exists from the first start; an admin made from
//	              ADMIN_PASS joins no channel
//	[joinDefault] apps/meteor/app/authentication/server/startup/index.js @0137f511128d9f2bb6b9cec1c0737e43e1cf80c4
//	              (insertUserDoc: a new user with a username joins the default channels
//	              unless options.joinDefaultChannels === false, which users.create passes on
//	              from its body through apps/meteor/app/lib/server/functions/saveUser/saveNewUser.ts
//	              @22a37f9c681394b121d14b88556ea30a90a8b21e) and
//	              apps/meteor/app/lib/server/functions/addUserToDefaultChannels.ts
//	              @077da506844f66f7e3e5ae9ad1d4586319f58652 (a subscription to every room with
//	              default: true, 'c' or 'p', the user is not in yet)
//
// (inferred) At most maxRooms rooms exist (teams' main rooms included),
// so that fixtures cannot grow the emulator without bound.

// room is a document of the rooms collection (public channel "c" or
// private group "p").
type room struct {
	id, name  string
	t         string // "c" or "p"
	topic     string
	isDefault bool   // default: new users join it ([joinDefault])
	seq       int    // creation order
	teamID    string // the team the room belongs to ("" for none)
	teamMain  bool   // the team's main room
	archived  bool
	broadcast bool
	creator   string // u._id
	createdAt time.Time
	updatedAt time.Time
	subs      map[string]*subscription // by user _id
	// msgs are the room's messages, oldest first, at most
	// maxRoomMessages (chat.go); msgCount counts every message ever
	// posted (the room's msgs field) and lm is the last one's ts (zero
	// for none).
	msgs     []Message
	msgCount int
	lm       time.Time
}

// subscription is a document of the subscriptions collection: one
// user's membership of one room.
type subscription struct {
	roles []string // room roles: owner, moderator, leader
	ts    time.Time
}

// team is a document of the team collection with its team_member
// documents.
type team struct {
	id, name  string
	typ       int    // 0 public, 1 private (TEAM_TYPE)
	roomID    string // the main room
	createdBy string // user _id
	createdAt time.Time
	updatedAt time.Time
	members   map[string]*teamMember // by user _id
}

// teamMember is a document of the team_member collection.
type teamMember struct {
	roles     []string // e.g. owner
	createdBy string
	createdAt time.Time
}

// roomDB holds the rooms and teams. Guarded by Server.mu.
type roomDB struct {
	rooms      map[string]*room
	roomByName map[string]string // exact name → _id (Rooms.findOneByName)
	teams      map[string]*team
	teamByName map[string]string // exact name → _id
	seq        int               // the last room's seq
}

// GeneralID is the _id of #general, the default channel that exists from
// the first start ([initialData]).
const GeneralID = "GENERAL"

// maxRooms bounds the rooms that AddRoom and AddTeam create.
const maxRooms = 50

// roomName is UTF8_Channel_Names_Validation's default: the names AddRoom
// and AddTeam accept.
var roomName = regexp.MustCompile(`^[0-9a-zA-Z-_.]+$`)

// newRoomDB holds #general alone ([initialData]), created at now.
func newRoomDB(now time.Time) *roomDB {
	db := &roomDB{rooms: map[string]*room{}, roomByName: map[string]string{}, teams: map[string]*team{}, teamByName: map[string]string{}}
	db.insert(&room{id: GeneralID, name: "general", t: "c", isDefault: true, createdAt: now, updatedAt: now, subs: map[string]*subscription{}})
	return db
}

// insert adds r, numbered after the rooms before it.
func (db *roomDB) insert(r *room) {
	db.seq++
	r.seq = db.seq
	db.rooms[r.id] = r
	db.roomByName[r.name] = r.id
}

// byIDOrName is Rooms.findOneById or, for a name, Rooms.findOneByName
// (exact match), as findChannelByIdOrName and getRoomFromParams do.
func (db *roomDB) byIDOrName(id, name string, hasID bool) *room {
	if hasID {
		return db.rooms[id]
	}
	if rid, ok := db.roomByName[name]; ok {
		return db.rooms[rid]
	}
	return nil
}

// objectID is a MongoDB ObjectId in hex: the team collection's _ids
// (e.g. "607e0d9b49d493189836bfac" in rooms.yaml's teams.info example).
func objectID() string {
	b := make([]byte, 12)
	binaryTime := uint32(time.Now().Unix())
	b[0], b[1], b[2], b[3] = byte(binaryTime>>24), byte(binaryTime>>16), byte(binaryTime>>8), byte(binaryTime)
	if _, err := rand.Read(b[4:]); err != nil {
		panic("rcemu: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}

// roomPermission is Rocket.Chat's hasPermission(uid, permission, rid): the
// user's roles plus the roles of their subscription to rid (owner,
// moderator, leader) against the permission's roles (RocketChat/Rocket.Chat
// apps/meteor/server/services/authorization/service.ts
// @78da2ffbabc4d5aa21ef2d7aa2ad4dbc4725e164, getRoles). s.mu must be held.
func (s *Server) roomPermission(u *user, perm string, r *room) bool {
	if u == nil {
		return false
	}
	if s.hasPermission(u, perm) {
		return true
	}
	if r == nil {
		return false
	}
	sub := r.subs[u.id]
	p := s.perms[perm]
	if sub == nil || p == nil {
		return false
	}
	for _, role := range sub.roles {
		if slices.Contains(p.roles, role) {
			return true
		}
	}
	return false
}

// canAccessRoom is Rocket.Chat's canAccessRoom for channels and groups:
// a public room of a public team, or a public room outside teams, with
// view-c-room; a public room of a private team for its team members; any
// room the user is subscribed to with view-joined-room or
// view-<t>-room (RocketChat/Rocket.Chat
// apps/meteor/server/services/authorization/canAccessRoom.ts
// @e09cbc33a5a9c4ff3ed4d433131a9d6de4a6767d). Discussions, livechat and
// voip rooms are not emulated. s.mu must be held.
func (s *Server) canAccessRoom(r *room, u *user) bool {
	if r == nil || u == nil {
		return false
	}
	if r.t == "c" && r.teamID != "" {
		if tm := s.rooms.teams[r.teamID]; tm != nil && tm.typ == 0 {
			if s.hasPermission(u, "view-c-room") {
				return true
			}
		} else if tm != nil && tm.members[u.id] != nil {
			return true
		}
	}
	if r.t == "c" && r.teamID == "" && s.hasPermission(u, "view-c-room") {
		return true
	}
	if r.subs[u.id] != nil {
		return s.hasPermission(u, "view-joined-room") || s.hasPermission(u, "view-"+r.t+"-room")
	}
	return false
}

// addUserToRoom is Rocket.Chat's addUserToRoom: a subscription for u,
// unless there is one; joining a team's main room makes u a member of the
// team (RocketChat/Rocket.Chat apps/meteor/app/lib/server/functions/addUserToRoom.ts,
// as Team.addMembers relies on in apps/meteor/server/services/team/service.ts
// @ed3fd2bd4722e7eadd3f797a7bcd1b5ef0e09444). s.mu must be held.
func (s *Server) addUserToRoom(r *room, u *user, inviter string, now time.Time) {
	if r.subs[u.id] != nil {
		return
	}
	r.subs[u.id] = &subscription{ts: now}
	r.updatedAt = now
	if r.teamMain && r.teamID != "" {
		if tm := s.rooms.teams[r.teamID]; tm != nil && tm.members[u.id] == nil {
			tm.members[u.id] = &teamMember{createdBy: inviter, createdAt: now}
		}
	}
}

// removeUserFromRoom drops u's subscription (and its room roles); leaving
// a team's main room ends the team membership (RocketChat/Rocket.Chat
// apps/meteor/server/methods/removeUserFromRoom.ts
// @02dbedfbceefa2cfb28540304c5c9f2edf7569aa: "if a user is kicked from the
// main team room, delete the team membership"). s.mu must be held.
func (s *Server) removeUserFromRoom(r *room, userID string, now time.Time) {
	if r.subs[userID] == nil {
		return
	}
	delete(r.subs, userID)
	r.updatedAt = now
	if r.teamMain && r.teamID != "" {
		if tm := s.rooms.teams[r.teamID]; tm != nil {
			delete(tm.members, userID)
		}
	}
}

// joinDefaultChannels is addUserToDefaultChannels ([joinDefault]): u gets
// a subscription to every default room it has none of, without a room
// role and without becoming a team member. The "user joined" system
// messages it posts when not silenced are not emulated. s.mu must be held.
func (s *Server) joinDefaultChannels(u *user, now time.Time) {
	for _, r := range s.rooms.rooms {
		if r.isDefault && r.subs[u.id] == nil {
			r.subs[u.id] = &subscription{ts: now}
		}
	}
}

// ---- test and demo helpers ----

// ErrNoRoom is returned by the room helpers for an unknown room or team.
var ErrNoRoom = errors.New("rcemu: no such room or team")

// NewRoom describes a room created directly with AddRoom.
type NewRoom struct {
	// Name is the room's name (unique among rooms, exact match).
	Name string
	// Private makes a private group (t "p"); default a public channel.
	Private bool
	// Owner is the creator's _id (owner of the room); default the initial
	// admin, who then is a member.
	Owner string
	// Members are more users' _ids subscribed to the room.
	Members []string
	// Broadcast and Archived set the room flags of those names.
	Broadcast, Archived bool
	// Topic is the room's topic, shown by the web client.
	Topic string
	// Default makes a default room (default: true): users created later
	// with joinDefaultChannels join it ([joinDefault]).
	Default bool
}

// AddRoom creates a room directly (no REST, no permission checks), like an
// administrator creating it in Rocket.Chat: the owner is subscribed with
// the owner role, Members plainly. It returns the room's _id. Errors: a
// name that is not [0-9a-zA-Z-_.]+ (UTF8_Channel_Names_Validation's
// default) or is taken (exactly), an unknown user, more than 50 rooms.
func (s *Server) AddRoom(nr NewRoom) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.newRoomLocked(nr, "", false)
	if err != nil {
		return "", err
	}
	return r.id, nil
}

func (s *Server) newRoomLocked(nr NewRoom, teamID string, teamMain bool) (*room, error) {
	if !roomName.MatchString(nr.Name) {
		return nil, fmt.Errorf("rcemu: AddRoom: %q is not a valid room name ([0-9a-zA-Z-_.]+)", nr.Name)
	}
	if _, taken := s.rooms.roomByName[nr.Name]; taken {
		return nil, fmt.Errorf("rcemu: AddRoom: a room named %q exists", nr.Name)
	}
	if len(s.rooms.rooms) >= maxRooms {
		return nil, fmt.Errorf("rcemu: AddRoom: at most %d rooms", maxRooms)
	}
	owner := nr.Owner
	if owner == "" {
		owner = s.adminID
	}
	members := append([]string{owner}, nr.Members...)
	for _, id := range members {
		if s.st.users[id] == nil {
			return nil, fmt.Errorf("rcemu: AddRoom: %w: %s", ErrNoUser, id)
		}
	}
	now := s.now()
	t := "c"
	if nr.Private {
		t = "p"
	}
	r := &room{id: randomID(), name: nr.Name, t: t, topic: nr.Topic, isDefault: nr.Default, teamID: teamID, teamMain: teamMain,
		archived: nr.Archived, broadcast: nr.Broadcast, creator: owner, createdAt: now, updatedAt: now, subs: map[string]*subscription{}}
	for _, id := range members {
		r.subs[id] = &subscription{ts: now}
	}
	r.subs[owner].roles = []string{"owner"}
	s.rooms.insert(r)
	return r, nil
}

// AddTeam creates a team directly, like Team.create: its main room (a
// public channel, or a private group for a private team) of the same
// name, the owner as team member with the owner role and subscribed to the
// main room as its owner, Members as plain team members and subscribers.
// It returns the team's _id and its main room's _id.
func (s *Server) AddTeam(nr NewRoom) (teamID, roomID string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.rooms.teamByName[nr.Name]; taken {
		return "", "", fmt.Errorf("rcemu: AddTeam: a team named %q exists", nr.Name)
	}
	id := objectID()
	r, err := s.newRoomLocked(nr, id, true)
	if err != nil {
		return "", "", err
	}
	now := s.now()
	typ := 0
	if nr.Private {
		typ = 1
	}
	tm := &team{id: id, name: nr.Name, typ: typ, roomID: r.id, createdBy: r.creator, createdAt: now, updatedAt: now, members: map[string]*teamMember{}}
	for uid := range r.subs {
		tm.members[uid] = &teamMember{createdBy: r.creator, createdAt: now}
	}
	tm.members[r.creator].roles = []string{"owner"}
	s.rooms.teams[id] = tm
	s.rooms.teamByName[tm.name] = id
	return id, r.id, nil
}

// JoinRoom subscribes a user to a room as they would by joining it
// themselves (or being added by someone other than rcsso); joining a
// team's main room makes them a team member. Errors: ErrNoRoom, ErrNoUser.
func (s *Server) JoinRoom(roomID, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms.rooms[roomID]
	if r == nil {
		return ErrNoRoom
	}
	u := s.st.users[userID]
	if u == nil {
		return ErrNoUser
	}
	s.addUserToRoom(r, u, userID, s.now())
	return nil
}

// DeleteRoom erases a room and its subscriptions, as an administrator
// deleting it; deleting a team's main room deletes the team. Errors:
// ErrNoRoom.
func (s *Server) DeleteRoom(roomID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms.rooms[roomID]
	if r == nil {
		return ErrNoRoom
	}
	delete(s.rooms.rooms, roomID)
	delete(s.rooms.roomByName, r.name)
	if r.teamMain {
		if tm := s.rooms.teams[r.teamID]; tm != nil {
			delete(s.rooms.teams, tm.id)
			delete(s.rooms.teamByName, tm.name)
		}
	}
	return nil
}

// RoomMembers returns the _ids of the users subscribed to a room, sorted
// (ErrNoRoom for an unknown room).
func (s *Server) RoomMembers(roomID string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms.rooms[roomID]
	if r == nil {
		return nil, ErrNoRoom
	}
	return slices.Sorted(maps.Keys(r.subs)), nil
}

// IsMember reports whether a user is subscribed to a room.
func (s *Server) IsMember(roomID, userID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms.rooms[roomID]
	return r != nil && r.subs[userID] != nil
}

// IsTeamMember reports whether a user is a member of a team.
func (s *Server) IsTeamMember(teamID, userID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	tm := s.rooms.teams[teamID]
	return tm != nil && tm.members[userID] != nil
}

// matchFilter is Users.findPaginatedByActiveUsersExcept's search: the
// term, regexp-escaped, matched case-insensitively anywhere in one of the
// Accounts_SearchFields (RocketChat/Rocket.Chat apps/meteor/server/lib/findUsersOfRoom.ts
// @0716b16726b26cf631a801fb90abca44a92c791d). s.mu must be held.
func (s *Server) matchFilter(u *user, filter string) bool {
	if filter == "" {
		return true
	}
	re, err := regexp.Compile("(?i)" + regexp.QuoteMeta(filter))
	if err != nil {
		return false
	}
	for _, f := range strings.Split(s.settingString("Accounts_SearchFields"), ",") {
		var v string
		switch strings.TrimSpace(f) {
		case "username":
			v = u.username
		case "name":
			v = u.name
		case "bio":
			v = u.bio
		case "nickname":
			v = u.nickname
		}
		if v != "" && re.MatchString(v) {
			return true
		}
	}
	return false
}
