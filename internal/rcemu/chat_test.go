package rcemu

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// chatUser adds a user with a resume token and returns the token.
func chatUser(t *testing.T, s *Server, username string) (id, token string) {
	t.Helper()
	id, err := s.AddUser(NewUser{Username: username, Name: "Name of " + username, Email: username + "@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	token = randomSecret()
	if err := s.PushResumeToken(id, token); err != nil {
		t.Fatal(err)
	}
	return id, token
}

// method calls a /_emu/ stand-in method with a raw body.
func method(t *testing.T, s *Server, name, body string) (int, map[string]any, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/_emu/ddp-"+name, strings.NewReader(body)))
	var m map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &m)
	return rec.Code, m, rec.Body.String()
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// roomNames calls ddp-rooms as the holder of tok: the names in the
// sidebar's order.
func roomNames(t *testing.T, s *Server, tok string) []string {
	t.Helper()
	code, m, raw := method(t, s, "rooms", js(map[string]any{"token": tok}))
	list, ok := m["rooms"].([]any)
	if code != 200 || !ok {
		t.Fatalf("rooms: %d %s", code, raw)
	}
	names := []string{}
	for _, r := range list {
		names = append(names, r.(map[string]any)["name"].(string))
	}
	return names
}

// The web client's chat shows the rooms of the REST API: #general exists
// from the start; the sidebar lists the rooms the user is subscribed to,
// latest message first; a message sent to a room is kept and comes back
// newest first with its sender; Go fixtures see the same.
func TestChatSendAndHistory(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	id, tok := chatUser(t, s, "alice")
	if got := roomNames(t, s, tok); len(got) != 0 {
		t.Fatalf("a user in no room sees %v", got)
	}
	random, err := s.AddRoom(NewRoom{Name: "random", Topic: "Anything goes", Members: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.JoinRoom(GeneralID, id); err != nil {
		t.Fatal(err)
	}
	code, me, _ := method(t, s, "me", js(map[string]any{"token": tok}))
	if code != 200 || me["username"] != "alice" || me["name"] != "Name of alice" || me["_id"] != id {
		t.Fatalf("me: %d %v", code, me)
	}
	_, rooms, _ := method(t, s, "rooms", js(map[string]any{"token": tok}))
	list, _ := rooms["rooms"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["_id"] != GeneralID || list[1].(map[string]any)["_id"] != random ||
		list[1].(map[string]any)["topic"] != "Anything goes" || list[1].(map[string]any)["t"] != "c" {
		t.Fatalf("rooms without messages, in creation order: %v", rooms)
	}
	for _, text := range []string{"first", "second <b>not bold</b>"} {
		code, m, raw := method(t, s, "send-message", js(map[string]any{"token": tok, "message": map[string]any{"rid": random, "msg": text}}))
		if code != 200 || m["msg"] != text || m["rid"] != random || m["u"].(map[string]any)["username"] != "alice" {
			t.Fatalf("send-message: %d %s", code, raw)
		}
	}
	if got := roomNames(t, s, tok); !slices.Equal(got, []string{"random", "general"}) {
		t.Fatalf("after a message in #random the sidebar is %v, want random first", got)
	}
	_, h, raw := method(t, s, "load-history", js(map[string]any{"token": tok, "rid": random}))
	msgs, _ := h["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["msg"] != "second <b>not bold</b>" || msgs[1].(map[string]any)["msg"] != "first" {
		t.Fatalf("load-history: %s", raw)
	}
	if got := s.Messages("random"); len(got) != 2 || got[0].Text != "first" || got[1].Name != "Name of alice" {
		t.Fatalf("Messages: %+v", got)
	}
	if _, h, _ := method(t, s, "load-history", js(map[string]any{"token": tok, "rid": GeneralID})); len(h["messages"].([]any)) != 0 {
		t.Fatalf("#general got #random's messages: %v", h)
	}
	if err := s.PostMessage("general", s.AdminID(), "hello"); err != nil {
		t.Fatal(err)
	}
	if got := roomNames(t, s, tok); !slices.Equal(got, []string{"general", "random"}) {
		t.Fatalf("after a message in #general the sidebar is %v, want general first", got)
	}
	if err := s.PostMessage("nope", s.AdminID(), "hello"); err != ErrNoRoom {
		t.Fatalf("PostMessage to an unknown room: %v", err)
	}
	if err := s.PostMessage("general", "nobody", "hello"); err != ErrNoUser {
		t.Fatalf("PostMessage from an unknown user: %v", err)
	}
	if _, err := s.AddRoom(NewRoom{Name: "general"}); err == nil {
		t.Fatal("AddRoom took a name in use")
	}
	if _, err := s.AddRoom(NewRoom{Name: "no spaces"}); err == nil {
		t.Fatal("AddRoom took an invalid name")
	}
}

// A private group exists only for its members: another user neither sees
// it in the sidebar nor loads its history (false, as for an unknown room)
// nor sends to it (error-not-allowed). A public channel one is not in is
// not in the sidebar, but its history can be read with preview-c-room and
// one can send to it, as in Rocket.Chat.
func TestChatFollowsSubscriptions(t *testing.T) {
	s, ts := newTestServer(t, Config{})
	bobID, bobTok := chatUser(t, s, "bob")
	aliceID, aliceTok := chatUser(t, s, "alice")
	leads, err := s.AddRoom(NewRoom{Name: "leads", Private: true, Owner: bobID})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PostMessage("leads", bobID, "secret plans"); err != nil {
		t.Fatal(err)
	}
	if got := roomNames(t, s, bobTok); !slices.Equal(got, []string{"leads"}) {
		t.Fatalf("bob's sidebar: %v", got)
	}
	_, h, raw := method(t, s, "load-history", js(map[string]any{"token": bobTok, "rid": leads}))
	if msgs, _ := h["messages"].([]any); len(msgs) != 1 {
		t.Fatalf("bob's history of his group: %s", raw)
	}

	if got := roomNames(t, s, aliceTok); len(got) != 0 {
		t.Fatalf("alice sees %v", got)
	}
	if _, _, raw := method(t, s, "load-history", js(map[string]any{"token": aliceTok, "rid": leads})); strings.TrimSpace(raw) != "false" {
		t.Fatalf("alice loaded the history of a group she is not in: %s", raw)
	}
	code, m, raw := method(t, s, "send-message", js(map[string]any{"token": aliceTok, "message": map[string]any{"rid": leads, "msg": "let me in"}}))
	if _, hasReason := m["reason"]; code != 400 || m["error"] != "error-not-allowed" || m["message"] != "[error-not-allowed]" || hasReason {
		t.Fatalf("alice sent to a group she is not in: %d %s", code, raw)
	}
	if n := len(s.Messages("leads")); n != 1 {
		t.Fatalf("#leads has %d messages", n)
	}

	// #general: alice is not in it; preview-c-room lets her read it, and
	// canAccessRoom lets her send to it.
	if code, _, raw := method(t, s, "send-message", js(map[string]any{"token": aliceTok, "message": map[string]any{"rid": GeneralID, "msg": "hi"}})); code != 200 {
		t.Fatalf("send to a public channel: %d %s", code, raw)
	}
	if _, h, raw := method(t, s, "load-history", js(map[string]any{"token": aliceTok, "rid": GeneralID})); len(h["messages"].([]any)) != 1 {
		t.Fatalf("preview of #general: %s", raw)
	}
	if got := roomNames(t, s, aliceTok); len(got) != 0 {
		t.Fatalf("sending to #general subscribed alice: %v", got)
	}
	adminClient(t, s, ts).post("/api/v1/permissions.update", map[string]any{"permissions": []any{
		map[string]any{"_id": "preview-c-room", "roles": []string{"admin"}}}}).wantStatus(t, http.StatusOK)
	if _, _, raw := method(t, s, "load-history", js(map[string]any{"token": aliceTok, "rid": GeneralID})); strings.TrimSpace(raw) != "false" {
		t.Fatalf("history of a channel alice is not in, without preview-c-room: %s", raw)
	}
	// Once invited, the group is hers too.
	if err := s.JoinRoom(leads, aliceID); err != nil {
		t.Fatal(err)
	}
	if got := roomNames(t, s, aliceTok); !slices.Equal(got, []string{"leads"}) {
		t.Fatalf("alice's sidebar after joining: %v", got)
	}
}

// A room made by AddRoom for the chat is a room of the REST API too, and
// the other way round: channels.info shows its topic, default flag and
// message count, channels.members its members; #general is there from the
// start as a default channel.
func TestChatRoomsAreRESTRooms(t *testing.T) {
	s, ts := newTestServer(t, Config{})
	admin := adminClient(t, s, ts)
	aliceID, _ := chatUser(t, s, "alice")
	support, err := s.AddRoom(NewRoom{Name: "support", Topic: "Questions", Default: true, Members: []string{aliceID}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PostMessage("support", aliceID, "help"); err != nil {
		t.Fatal(err)
	}
	info := admin.get("/api/v1/channels.info?roomName=support").wantStatus(t, http.StatusOK)
	if info.str("channel._id") != support || info.str("channel.topic") != "Questions" || info.field("channel.default") != true ||
		info.field("channel.msgs") != float64(1) || info.str("channel.lm") == "" {
		t.Fatalf("channels.info: %s", info.raw)
	}
	if m := admin.get("/api/v1/channels.members?roomId="+support).wantStatus(t, http.StatusOK); m.field("total") != float64(2) {
		t.Fatalf("channels.members (admin, alice): %s", m.raw)
	}
	gen := admin.get("/api/v1/channels.info?roomName=general").wantStatus(t, http.StatusOK)
	if gen.str("channel._id") != GeneralID || gen.field("channel.default") != true || gen.field("channel.usersCount") != float64(0) {
		t.Fatalf("channels.info of #general: %s", gen.raw)
	}
	// Invited over REST, bob finds #support in his sidebar.
	bobID, bobTok := chatUser(t, s, "bob")
	admin.post("/api/v1/channels.invite", map[string]any{"roomId": support, "userId": bobID}).wantStatus(t, http.StatusOK)
	if got := roomNames(t, s, bobTok); !slices.Equal(got, []string{"support"}) {
		t.Fatalf("bob's sidebar after channels.invite: %v", got)
	}
}

// users.create subscribes the new user to the default rooms (#general and
// those made with Default) unless joinDefaultChannels is false; a room
// that is not default is not joined.
func TestUsersCreateJoinsDefaultChannels(t *testing.T) {
	s, ts := newTestServer(t, Config{})
	admin := adminClient(t, s, ts)
	support, err := s.AddRoom(NewRoom{Name: "support", Default: true})
	if err != nil {
		t.Fatal(err)
	}
	secret, err := s.AddRoom(NewRoom{Name: "secret", Private: true, Default: true})
	if err != nil {
		t.Fatal(err)
	}
	sales, err := s.AddRoom(NewRoom{Name: "sales"})
	if err != nil {
		t.Fatal(err)
	}
	create := func(username string, join any) string {
		body := map[string]any{"email": username + "@example.test", "name": username, "password": "pw-" + username, "username": username}
		if join != nil {
			body["joinDefaultChannels"] = join
		}
		return admin.post("/api/v1/users.create", body).wantStatus(t, http.StatusOK).str("user._id")
	}
	for _, tc := range []struct {
		username string
		join     any
		want     bool
	}{{"absent", nil, true}, {"yes", true, true}, {"no", false, false}} {
		id := create(tc.username, tc.join)
		for _, rid := range []string{GeneralID, support, secret} {
			if got := s.IsMember(rid, id); got != tc.want {
				t.Errorf("joinDefaultChannels %v: member of %s = %v, want %v", tc.join, rid, got, tc.want)
			}
		}
		if s.IsMember(sales, id) {
			t.Errorf("joinDefaultChannels %v: joined #sales, which is not default", tc.join)
		}
	}
}

// Hostile or broken calls are refused with a Meteor error and store
// nothing; a channel keeps at most maxRoomMessages.
func TestChatRefusals(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	_, tok := chatUser(t, s, "alice")
	deadID, dead := chatUser(t, s, "dora")
	s.mu.Lock()
	s.st.users[deadID].active = false
	s.mu.Unlock()
	send := func(rid, msg string) string {
		return js(map[string]any{"token": tok, "message": map[string]any{"rid": rid, "msg": msg}})
	}
	for _, tc := range []struct {
		name, method, body, wantErr string
	}{
		{"no token", "send-message", `{"message":{"rid":"GENERAL","msg":"x"}}`, "error-invalid-user"},
		{"unknown token", "send-message", `{"token":"nope","message":{"rid":"GENERAL","msg":"x"}}`, "error-invalid-user"},
		{"deactivated user", "send-message", js(map[string]any{"token": dead, "message": map[string]any{"rid": "GENERAL", "msg": "x"}}), "error-invalid-user"},
		{"token not a string", "send-message", `{"token":1,"message":{"rid":"GENERAL","msg":"x"}}`, "400"},
		{"not JSON", "send-message", `{"token":`, "400"},
		{"no message", "send-message", js(map[string]any{"token": tok}), "400"},
		{"message not an object", "send-message", js(map[string]any{"token": tok, "message": "hi"}), "400"},
		{"too long", "send-message", send("GENERAL", strings.Repeat("a", 5001)), "error-message-size-exceeded"},
		{"too long in UTF-16 units", "send-message", send("GENERAL", strings.Repeat("😀", 2501)), "error-message-size-exceeded"},
		{"empty", "send-message", send("GENERAL", " \n\t"), "error-invalid-message"},
		{"unknown room", "send-message", send("ROOM", "x"), "error-invalid-room"},
		{"huge body", "send-message", `{"token":"` + strings.Repeat("a", 70<<10) + `"}`, "400"},
		{"history without token", "load-history", `{"rid":"GENERAL"}`, "error-invalid-user"},
		{"rooms without token", "rooms", `{}`, "error-invalid-user"},
		{"me without token", "me", `{}`, "error-invalid-user"},
		{"history limit not a number", "load-history", js(map[string]any{"token": tok, "rid": "GENERAL", "limit": "all"}), "400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m, raw := method(t, s, tc.method, tc.body)
			if code != 400 || m["errorType"] != "Meteor.Error" || (tc.wantErr != "400" && m["error"] != tc.wantErr) {
				t.Fatalf("%d %s, want 400 %s", code, raw, tc.wantErr)
			}
		})
	}
	if n := len(s.Messages("general")); n != 0 {
		t.Fatalf("%d messages stored by refused calls", n)
	}
	if _, _, raw := method(t, s, "load-history", js(map[string]any{"token": tok, "rid": "NOPE"})); strings.TrimSpace(raw) != "false" {
		t.Fatalf("history of an unknown room: %s", raw)
	}
	if code, _, _ := method(t, s, "send-message", send("GENERAL", strings.Repeat("a", 5000))); code != 200 {
		t.Fatalf("a message of exactly 5000 characters: %d", code)
	}
	for i := range maxRoomMessages + 10 {
		if code, _, raw := method(t, s, "send-message", send("GENERAL", "m"+strings.Repeat("x", i%3))); code != 200 {
			t.Fatalf("send %d: %s", i, raw)
		}
	}
	if n := len(s.Messages("general")); n != maxRoomMessages {
		t.Fatalf("general keeps %d messages, want %d", n, maxRoomMessages)
	}
	_, h, _ := method(t, s, "load-history", js(map[string]any{"token": tok, "rid": "GENERAL", "limit": 1000}))
	if n := len(h["messages"].([]any)); n != maxHistory {
		t.Fatalf("load-history limit 1000 answered %d messages, want %d", n, maxHistory)
	}
	// Only POST.
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/_emu/ddp-load-history", nil))
	if rec.Code != http.StatusMethodNotAllowed && rec.Code != http.StatusNotFound {
		t.Fatalf("GET: %d", rec.Code)
	}
}

// FuzzDDPSendMessage: any body to the send-message stand-in answers 200
// with a stored message or 400 with a Meteor error, never panics, and
// stores at most one message.
func FuzzDDPSendMessage(f *testing.F) {
	s, err := New(Config{AdminPassword: "admin-password", BcryptCost: 4})
	if err != nil {
		f.Fatal(err)
	}
	id, err := s.AddUser(NewUser{Username: "fuzz", Name: "Fuzz"})
	if err != nil {
		f.Fatal(err)
	}
	const tok = "fuzz-token-0123456789"
	if err := s.PushResumeToken(id, tok); err != nil {
		f.Fatal(err)
	}
	for _, seed := range []string{
		`{"token":"fuzz-token-0123456789","message":{"rid":"GENERAL","msg":"hi"}}`,
		`{"token":"fuzz-token-0123456789","message":{"rid":"GENERAL","msg":""}}`,
		`{"token":"fuzz-token-0123456789","message":{"rid":"GENERAL","msg":"\u0000\ud800"}}`,
		`{"token":"fuzz-token-0123456789","message":{"rid":["GENERAL"]}}`,
		`{"token":"fuzz-token-0123456789","message":null}`,
		`{"token":"fuzz-token-0123456789","message":{"rid":"GENERAL","msg":"a"},"message":{"rid":"X"}}`,
		`[]`, `null`, ``, `{`, `"x"`,
	} {
		f.Add([]byte(seed))
	}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, body []byte) {
		before := len(s.Messages("general"))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/_emu/ddp-send-message", bytes.NewReader(body)))
		after := len(s.Messages("general"))
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%d %q: not a JSON object", rec.Code, rec.Body.String())
		}
		switch rec.Code {
		case 200:
			if m["_id"] == nil || (after != before+1 && after != maxRoomMessages) {
				t.Fatalf("200 %v, messages %d → %d", m, before, after)
			}
		case 400:
			if m["errorType"] != "Meteor.Error" || after != before {
				t.Fatalf("400 %v, messages %d → %d", m, before, after)
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}
