package rcemu

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf16"
)

// The web client's chat: channels and their messages, kept in memory only
// (also in MongoDB mode), so that the emulator's page looks like a chat.
// The client reaches them through stand-ins for Meteor methods, like its
// logins (/_emu/ddp-login); these /_emu/ endpoints are the emulator's own,
// not Rocket.Chat's REST API:
//
//	POST /_emu/ddp-me            {token} → {_id, username, name, status}: Meteor.user()
//	POST /_emu/ddp-rooms         {token} → {rooms: [{_id, t, name, fname, topic}]}
//	POST /_emu/ddp-load-history  {token, rid, limit?} → {messages: [newest first]}
//	POST /_emu/ddp-send-message  {token, message: {rid, msg}} → the stored message
//
// A failure is 400 {error, reason, message, errorType: "Meteor.Error"}
// (writeMeteorError). Messages have Rocket.Chat's IMessage shape: {_id,
// rid, msg, ts, u: {_id, username, name}, _updatedAt}, times as ISO 8601
// strings as the REST API sends them.
//
// Sources (repository RocketChat/Rocket.Chat):
//
//	[initialData] apps/meteor/server/startup/initialData.ts @0bfd1635564033a54cd326c1eafc5b0177d1fcb0:
//	              the channel GENERAL ('c', name general, default) exists from the first start
//	[sendMessage] apps/meteor/app/lib/server/methods/sendMessage.ts @c35b3b543662901fd8c727f8e958b1d23432e5d4:
//	              no user → error-invalid-user "Invalid user"; msg longer (JavaScript length: UTF-16
//	              units) than Message_MaxAllowedSize → error-message-size-exceeded; the server sets ts
//	[msgSize]     apps/meteor/server/settings/message.ts @8955e1d4e484341a6b4d64fe2a2b03c858214196:
//	              Message_MaxAllowedSize defaults to 5000
//	[loadHistory] apps/meteor/server/methods/loadHistory.ts @462bf0292ef6b15f4990df3dfb67b144ea4fd859
//	              (limit defaults to 20; an unknown room answers false) and
//	              apps/meteor/app/lib/server/functions/loadMessageHistory.ts @9649d99c858e5d0a1ad7a7c31564dec7476c9062
//	              (sort ts -1: newest first)
//
// (inferred) Every user is treated as subscribed to every channel, and an
// empty message is refused (the composer sends none). The emulator keeps
// at most maxRoomMessages per channel, dropping the oldest, so a logged-in
// client cannot grow its memory without bound.

const (
	// maxRoomMessages is how many messages a channel keeps.
	maxRoomMessages = 500
	// maxHistory is the largest loadHistory limit served.
	maxHistory = 100
	// defaultMessageMaxSize is Message_MaxAllowedSize's default ([msgSize]).
	defaultMessageMaxSize = 5000
	// maxChannels bounds AddChannel.
	maxChannels = 50
)

// channelName is UTF8_Channel_Names_Validation's default.
var channelName = regexp.MustCompile(`^[0-9a-zA-Z-_.]+$`)

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

type chatRoom struct {
	id, name, topic string
	msgs            []Message // oldest first, at most maxRoomMessages
}

// chat is the channels collection with their messages. Its own lock, not
// Server.mu: a message poll reloads no users.
type chat struct {
	mu    sync.Mutex
	rooms []*chatRoom
}

func newChat() *chat {
	return &chat{rooms: []*chatRoom{{id: "GENERAL", name: "general"}}} // [initialData]
}

func (c *chat) byID(id string) *chatRoom {
	for _, r := range c.rooms {
		if r.id == id {
			return r
		}
	}
	return nil
}

func (c *chat) byName(name string) *chatRoom {
	for _, r := range c.rooms {
		if strings.EqualFold(r.name, name) {
			return r
		}
	}
	return nil
}

func (r *chatRoom) add(m Message) {
	if len(r.msgs) >= maxRoomMessages {
		r.msgs = append(r.msgs[:0], r.msgs[len(r.msgs)-maxRoomMessages+1:]...)
	}
	r.msgs = append(r.msgs, m)
}

// AddChannel creates a public channel (name as UTF8_Channel_Names_Validation
// allows: [0-9a-zA-Z-_.]+, unused case-insensitively) with a topic, and
// returns its _id. At most 50 channels exist.
func (s *Server) AddChannel(name, topic string) (string, error) {
	if !channelName.MatchString(name) {
		return "", fmt.Errorf("rcemu: AddChannel: %q is not a valid channel name ([0-9a-zA-Z-_.]+)", name)
	}
	s.chat.mu.Lock()
	defer s.chat.mu.Unlock()
	if s.chat.byName(name) != nil {
		return "", fmt.Errorf("rcemu: AddChannel: %q already exists", name)
	}
	if len(s.chat.rooms) >= maxChannels {
		return "", fmt.Errorf("rcemu: AddChannel: at most %d channels", maxChannels)
	}
	id := randomID()
	s.chat.rooms = append(s.chat.rooms, &chatRoom{id: id, name: name, topic: topic})
	return id, nil
}

// PostMessage stores a message from the user with that _id in the channel
// with that name, as a fixture (no size check). ErrNoUser or ErrNoRoom.
func (s *Server) PostMessage(channel, userID, text string) error {
	s.mu.Lock()
	u := s.st.users[userID]
	var username, name string
	if u != nil {
		username, name = u.username, u.name
	}
	s.mu.Unlock()
	if u == nil {
		return ErrNoUser
	}
	s.chat.mu.Lock()
	defer s.chat.mu.Unlock()
	r := s.chat.byName(channel)
	if r == nil {
		return ErrNoRoom
	}
	r.add(Message{ID: randomID(), RoomID: r.id, Text: text, TS: s.now(), UserID: userID, Username: username, Name: name})
	return nil
}

// Messages returns a copy of the channel's messages, oldest first (nil for
// an unknown channel).
func (s *Server) Messages(channel string) []Message {
	s.chat.mu.Lock()
	defer s.chat.mu.Unlock()
	r := s.chat.byName(channel)
	if r == nil {
		return nil
	}
	return append([]Message(nil), r.msgs...)
}

var (
	errInvalidUser  = &meteorError{code: "error-invalid-user", reason: "Invalid user"}
	errMessageSize  = &meteorError{code: "error-message-size-exceeded", reason: "Message size exceeds Message_MaxAllowedSize"}
	errEmptyMessage = &meteorError{code: "error-invalid-message", reason: "The message is empty"}
	errNoRoomFound  = &meteorError{code: "error-invalid-room", reason: "Invalid room"}
)

// methodCall reads a stand-in method call's JSON body (64 KiB at most) into
// v and finds the caller by resume token (errInvalidUser if none, or
// deactivated).
func (s *Server) methodCall(r *http.Request, v any) (*user, *meteorError) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
	if err != nil || len(data) > 64<<10 || json.Unmarshal(data, v) != nil {
		return nil, errMatchFailed
	}
	var tok struct {
		Token string `json:"token"`
	}
	_ = json.Unmarshal(data, &tok)
	if tok.Token == "" {
		return nil, errInvalidUser
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, _ := s.st.byToken(hashToken(tok.Token))
	if u == nil || !u.active {
		return nil, errInvalidUser
	}
	cp := *u
	return &cp, nil
}

// handleDDPMe is POST /_emu/ddp-me {token}: the client's own user document
// (Meteor.user()).
func (s *Server) handleDDPMe(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	u, e := s.methodCall(r, &body)
	if e != nil {
		writeMeteorError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"_id": u.id, "username": u.username, "name": u.name, "status": u.status})
}

// handleDDPRooms is POST /_emu/ddp-rooms {token}: the channels, in creation
// order.
func (s *Server) handleDDPRooms(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if _, e := s.methodCall(r, &body); e != nil {
		writeMeteorError(w, e)
		return
	}
	s.chat.mu.Lock()
	rooms := make([]map[string]any, 0, len(s.chat.rooms))
	for _, rm := range s.chat.rooms {
		rooms = append(rooms, map[string]any{"_id": rm.id, "t": "c", "name": rm.name, "fname": rm.name, "topic": rm.topic})
	}
	s.chat.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"rooms": rooms})
}

// handleDDPLoadHistory is POST /_emu/ddp-load-history {token, rid, limit}:
// loadHistory ([loadHistory]): the latest limit messages (default 20, at
// most 100), newest first; false for an unknown room.
func (s *Server) handleDDPLoadHistory(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RID   string `json:"rid"`
		Limit *int   `json:"limit"`
	}
	if _, e := s.methodCall(r, &body); e != nil {
		writeMeteorError(w, e)
		return
	}
	limit := 20
	if body.Limit != nil && *body.Limit > 0 {
		limit = min(*body.Limit, maxHistory)
	}
	s.chat.mu.Lock()
	rm := s.chat.byID(body.RID)
	var msgs []Message
	if rm != nil {
		n := min(limit, len(rm.msgs))
		msgs = make([]Message, 0, n)
		for i := len(rm.msgs) - 1; i >= len(rm.msgs)-n; i-- {
			msgs = append(msgs, rm.msgs[i])
		}
	}
	s.chat.mu.Unlock()
	if rm == nil {
		writeJSON(w, http.StatusOK, false)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs})
}

// handleDDPSendMessage is POST /_emu/ddp-send-message {token, message: {rid,
// msg}}: sendMessage ([sendMessage]); answers the stored message.
func (s *Server) handleDDPSendMessage(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Message *struct {
			RID string `json:"rid"`
			Msg string `json:"msg"`
		} `json:"message"`
	}
	u, e := s.methodCall(r, &body)
	if e == nil && body.Message == nil {
		e = errMatchFailed // check(message, Object)
	}
	if e != nil {
		writeMeteorError(w, e)
		return
	}
	s.mu.Lock()
	maxSize := s.settingInt("Message_MaxAllowedSize", defaultMessageMaxSize)
	s.mu.Unlock()
	switch msg := body.Message.Msg; {
	case len(utf16.Encode([]rune(msg))) > maxSize:
		e = errMessageSize
	case strings.TrimSpace(msg) == "":
		e = errEmptyMessage
	}
	if e != nil {
		writeMeteorError(w, e)
		return
	}
	s.chat.mu.Lock()
	rm := s.chat.byID(body.Message.RID)
	var m Message
	if rm != nil {
		m = Message{ID: randomID(), RoomID: rm.id, Text: body.Message.Msg, TS: s.now(), UserID: u.id, Username: u.username, Name: u.name}
		rm.add(m)
	}
	s.chat.mu.Unlock()
	if rm == nil {
		writeMeteorError(w, errNoRoomFound)
		return
	}
	writeJSON(w, http.StatusOK, m)
}
