package rcemu

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
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

// The web client's chat: #general exists, a message sent there is kept and
// comes back newest first with its sender; Go fixtures see the same.
func TestChatSendAndHistory(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	id, tok := chatUser(t, s, "alice")
	if _, err := s.AddChannel("random", "Anything goes"); err != nil {
		t.Fatal(err)
	}
	code, me, _ := method(t, s, "me", js(map[string]any{"token": tok}))
	if code != 200 || me["username"] != "alice" || me["name"] != "Name of alice" || me["_id"] != id {
		t.Fatalf("me: %d %v", code, me)
	}
	_, rooms, _ := method(t, s, "rooms", js(map[string]any{"token": tok}))
	list, _ := rooms["rooms"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["_id"] != "GENERAL" || list[1].(map[string]any)["name"] != "random" {
		t.Fatalf("rooms: %v", rooms)
	}
	for _, text := range []string{"first", "second <b>not bold</b>"} {
		code, m, raw := method(t, s, "send-message", js(map[string]any{"token": tok, "message": map[string]any{"rid": "GENERAL", "msg": text}}))
		if code != 200 || m["msg"] != text || m["rid"] != "GENERAL" || m["u"].(map[string]any)["username"] != "alice" {
			t.Fatalf("send-message: %d %s", code, raw)
		}
	}
	_, h, raw := method(t, s, "load-history", js(map[string]any{"token": tok, "rid": "GENERAL"}))
	msgs, _ := h["messages"].([]any)
	if len(msgs) != 2 || msgs[0].(map[string]any)["msg"] != "second <b>not bold</b>" || msgs[1].(map[string]any)["msg"] != "first" {
		t.Fatalf("load-history: %s", raw)
	}
	if got := s.Messages("general"); len(got) != 2 || got[0].Text != "first" || got[1].Name != "Name of alice" {
		t.Fatalf("Messages: %+v", got)
	}
	if err := s.PostMessage("random", s.AdminID(), "hello"); err != nil {
		t.Fatal(err)
	}
	if err := s.PostMessage("nope", s.AdminID(), "hello"); err != ErrNoRoom {
		t.Fatalf("PostMessage to an unknown channel: %v", err)
	}
	if _, err := s.AddChannel("General", ""); err == nil {
		t.Fatal("AddChannel took a name in use")
	}
	if _, err := s.AddChannel("no spaces", ""); err == nil {
		t.Fatal("AddChannel took an invalid name")
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
