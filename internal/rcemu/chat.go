package rcemu

import (
	"cmp"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf16"
)

// The web client's chat: the messages of the rooms of rooms.go (#general
// from the start, more with AddRoom and AddTeam), kept in memory only
// (also in MongoDB mode), so that the emulator's page looks like a chat.
// The client reaches them through stand-ins for Meteor methods, like its
// logins (/_emu/ddp-login); these /_emu/ endpoints are the emulator's own,
// not Rocket.Chat's REST API:
//
//	POST /_emu/ddp-me            {token} → {_id, username, name, status}: Meteor.user()
//	POST /_emu/ddp-rooms         {token} → {rooms: [{_id, t, name, fname, topic}]}: the sidebar
//	POST /_emu/ddp-load-history  {token, rid, limit?} → {messages: [newest first]} or false
//	POST /_emu/ddp-send-message  {token, message: {rid, msg}} → the stored message
//
// A failure is 400 {error, reason, message, errorType: "Meteor.Error"}
// (writeMeteorError). Messages have Rocket.Chat's IMessage shape: {_id,
// rid, msg, ts, u: {_id, username, name}, _updatedAt}, times as ISO 8601
// strings as the REST API sends them.
//
// Sources (repository RocketChat/Rocket.Chat):
//
//	[sidebar]     apps/meteor/client/sidebar/hooks/useRoomList.ts @03cbe3faa75926f952e1253a9e42a1692da4ca26:
//	              the room list is the user's subscriptions (useUserSubscriptions({open:
//	              {$ne: false}})), sorted by apps/meteor/client/hooks/useSortQueryOptions.ts
//	              @fee110d8682d56ca69184032c6f22daefba6ccfb: {lm: -1} (latest message first) for
//	              sidebarSortby "activity", its default (Accounts_Default_User_Preferences_sidebarSortby
//	              in apps/meteor/server/settings/accounts.ts @78e0dc31ede19914425f590ade4de7f53103ed94)
//	[sendMessage] apps/meteor/app/lib/server/methods/sendMessage.ts @c35b3b543662901fd8c727f8e958b1d23432e5d4:
//	              no user → error-invalid-user "Invalid user"; msg longer (JavaScript length: UTF-16
//	              units) than Message_MaxAllowedSize → error-message-size-exceeded; the server sets ts;
//	              canSendMessageAsync's error-not-allowed is rethrown as a Meteor.Error without a
//	              reason, details {method: "sendMessage"}
//	[canSend]     apps/meteor/app/authorization/server/functions/canSendMessage.ts @b70d92b8a5b7cf0129b5d4c402acd024ea5b85a1:
//	              no room → error-invalid-room; a room the user cannot access (canAccessRoom:
//	              a private group they are not in) → error-not-allowed; a public channel needs no
//	              subscription
//	[msgSize]     apps/meteor/server/settings/message.ts @8955e1d4e484341a6b4d64fe2a2b03c858214196:
//	              Message_MaxAllowedSize defaults to 5000
//	[loadHistory] apps/meteor/server/methods/loadHistory.ts @462bf0292ef6b15f4990df3dfb67b144ea4fd859
//	              (limit defaults to 20; false for an unknown room, for a room the user cannot
//	              access, and for a public channel they are not subscribed to without
//	              preview-c-room) and apps/meteor/app/lib/server/functions/loadMessageHistory.ts
//	              @9649d99c858e5d0a1ad7a7c31564dec7476c9062 (sort ts -1: newest first)
//
// (inferred) An empty message is refused (the composer sends none); in the
// room list, rooms without messages follow, in creation order. The
// emulator keeps at most maxRoomMessages per room, dropping the oldest, so
// a logged-in client cannot grow its memory without bound. Not emulated:
// hidden subscriptions (open: false), read-only and muted rooms.

const (
	// maxRoomMessages is how many messages a room keeps.
	maxRoomMessages = 500
	// maxHistory is the largest loadHistory limit served.
	maxHistory = 100
	// defaultMessageMaxSize is Message_MaxAllowedSize's default ([msgSize]).
	defaultMessageMaxSize = 5000
)

// Message is one chat message (Rocket.Chat's IMessage, the fields the
// emulator keeps).
type Message struct {
	ID     string    // _id
	RoomID string    // rid
	Text   string    // msg
	TS     time.Time // ts (and _updatedAt: messages are never edited)
	// UserID, Username and Name are u: the sender as they were when sending.
	UserID, Username, Name string
}

// MarshalJSON writes the IMessage shape with ISO 8601 times.
func (m Message) MarshalJSON() ([]byte, error) {
	ts := isoTime(m.TS)
	return json.Marshal(map[string]any{
		"_id": m.ID, "rid": m.RoomID, "msg": m.Text, "ts": ts, "_updatedAt": ts,
		"u": map[string]string{"_id": m.UserID, "username": m.Username, "name": m.Name},
	})
}

// post stores a message from u in r at now, dropping the oldest beyond
// maxRoomMessages, and returns it. s.mu must be held.
func (r *room) post(u *user, text string, now time.Time) Message {
	m := Message{ID: randomID(), RoomID: r.id, Text: text, TS: now, UserID: u.id, Username: u.username, Name: u.name}
	if len(r.msgs) >= maxRoomMessages {
		r.msgs = append(r.msgs[:0], r.msgs[len(r.msgs)-maxRoomMessages+1:]...)
	}
	r.msgs = append(r.msgs, m)
	r.msgCount++
	r.lm = now
	return m
}

// PostMessage stores a message from the user with that _id in the room
// with that name (exact), as a fixture: no size, membership or permission
// check. ErrNoUser or ErrNoRoom.
func (s *Server) PostMessage(roomName, userID, text string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.users[userID]
	if u == nil {
		return ErrNoUser
	}
	r := s.rooms.byIDOrName("", roomName, false)
	if r == nil {
		return ErrNoRoom
	}
	r.post(u, text, s.now())
	return nil
}

// Messages returns a copy of the messages of the room with that name
// (exact), oldest first (nil for an unknown room).
func (s *Server) Messages(roomName string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rooms.byIDOrName("", roomName, false)
	if r == nil {
		return nil
	}
	return slices.Clone(r.msgs)
}

var (
	errInvalidUser  = &meteorError{code: "error-invalid-user", reason: "Invalid user"}
	errMessageSize  = &meteorError{code: "error-message-size-exceeded", reason: "Message size exceeds Message_MaxAllowedSize"}
	errEmptyMessage = &meteorError{code: "error-invalid-message", reason: "The message is empty"}
	errNoRoomFound  = &meteorError{code: "error-invalid-room", reason: "Invalid room"}
	errNotAllowed   = &meteorError{code: "error-not-allowed", details: map[string]any{"method": "sendMessage"}}
)

// methodCall reads a stand-in method call's JSON body (64 KiB at most) into
// v, finds the caller by resume token (errInvalidUser if none, or
// deactivated) and runs fn with the caller while s.mu is held (one lock:
// in MongoDB mode one reload of the users).
func (s *Server) methodCall(r *http.Request, v any, fn func(u *user) *meteorError) *meteorError {
	data, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
	if err != nil || len(data) > 64<<10 || json.Unmarshal(data, v) != nil {
		return errMatchFailed
	}
	var tok struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(data, &tok)
	if tok.Token == "" {
		return errInvalidUser
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, _ := s.st.byToken(hashToken(tok.Token))
	if u == nil || !u.active {
		return errInvalidUser
	}
	return fn(u)
}

// handleDDPMe is POST /_emu/ddp-me {token}: the client's own user document
// (Meteor.user()).
func (s *Server) handleDDPMe(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	var me map[string]any
	if e := s.methodCall(r, &body, func(u *user) *meteorError {
		me = map[string]any{"_id": u.id, "username": u.username, "name": u.name, "status": u.status}
		return nil
	}); e != nil {
		writeMeteorError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, me)
}

// handleDDPRooms is POST /_emu/ddp-rooms {token}: the sidebar ([sidebar]):
// the rooms the caller is subscribed to, latest message first.
func (s *Server) handleDDPRooms(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	rooms := []map[string]any{}
	if e := s.methodCall(r, &body, func(u *user) *meteorError {
		var subs []*room
		for _, rm := range s.rooms.rooms {
			if rm.subs[u.id] != nil {
				subs = append(subs, rm)
			}
		}
		slices.SortFunc(subs, func(a, b *room) int { return cmp.Or(b.lm.Compare(a.lm), cmp.Compare(a.seq, b.seq)) })
		for _, rm := range subs {
			rooms = append(rooms, map[string]any{"_id": rm.id, "t": rm.t, "name": rm.name, "fname": rm.name, "topic": rm.topic})
		}
		return nil
	}); e != nil {
		writeMeteorError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"rooms": rooms})
}

// handleDDPLoadHistory is POST /_emu/ddp-load-history {token, rid, limit}:
// loadHistory ([loadHistory]): the latest limit messages (default 20, at
// most 100), newest first; false for an unknown room, a room the caller
// cannot access, or a public channel they are not in without
// preview-c-room.
func (s *Server) handleDDPLoadHistory(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RID   string `json:"rid"`
		Limit *int   `json:"limit"`
	}
	var msgs []Message
	found := false
	if e := s.methodCall(r, &body, func(u *user) *meteorError {
		rm := s.rooms.rooms[body.RID]
		if rm == nil || !s.canAccessRoom(rm, u) ||
			(rm.t == "c" && !s.hasPermission(u, "preview-c-room") && rm.subs[u.id] == nil) {
			return nil
		}
		found = true
		limit := 20
		if body.Limit != nil && *body.Limit > 0 {
			limit = min(*body.Limit, maxHistory)
		}
		n := min(limit, len(rm.msgs))
		msgs = make([]Message, 0, n)
		for i := len(rm.msgs) - 1; i >= len(rm.msgs)-n; i-- {
			msgs = append(msgs, rm.msgs[i])
		}
		return nil
	}); e != nil {
		writeMeteorError(w, e)
		return
	}
	if !found {
		writeJSON(w, http.StatusOK, false)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs})
}

// handleDDPSendMessage is POST /_emu/ddp-send-message {token, message: {rid,
// msg}}: sendMessage ([sendMessage], [canSend]); answers the stored
// message.
func (s *Server) handleDDPSendMessage(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Message *struct {
			RID string `json:"rid"`
			Msg string `json:"msg"`
		} `json:"message"`
	}
	var m Message
	e := s.methodCall(r, &body, func(u *user) *meteorError {
		if body.Message == nil {
			return errMatchFailed // check(message, Object)
		}
		msg := body.Message.Msg
		switch {
		case len(utf16.Encode([]rune(msg))) > s.settingInt("Message_MaxAllowedSize", defaultMessageMaxSize):
			return errMessageSize
		case strings.TrimSpace(msg) == "":
			return errEmptyMessage
		}
		rm := s.rooms.rooms[body.Message.RID]
		switch {
		case rm == nil:
			return errNoRoomFound
		case !s.canAccessRoom(rm, u):
			return errNotAllowed
		}
		m = rm.post(u, msg, s.now())
		return nil
	})
	if e != nil {
		writeMeteorError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, m)
}
