package demo

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// post sends a request with body and headers and decodes the JSON answer
// into v (when not nil); it returns the response.
func post(t *testing.T, u, contentType, body string, header http.Header, v any) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header != nil {
		req.Header = header.Clone()
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			t.Fatalf("POST %s: %d %s", u, resp.StatusCode, raw)
		}
	}
	return resp
}

// The demo's chat is worth looking at: the visitor, whose Rocket.Chat user
// rcsso creates at the first visit, is in #general, #support and #random
// (default channels, provisioning.join_default_channels) with #general
// first, and #general has the welcome message.
func TestDemoVisitorSeesTheChannels(t *testing.T) {
	r, err := Start(t.Context(), Options{SiteAddr: "127.0.0.1:0", RcssoAddr: "127.0.0.1:0", RocketChatAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })

	// Log in on rcsso's login page, then ask the API URL as the chat does.
	form := url.Values{"username": {r.Username}, "password": {r.Password}}
	resp := post(t, r.RcssoURL+"/login", "application/x-www-form-urlencoded", form.Encode(), nil, nil)
	h := http.Header{"Origin": {r.RocketChatURL}}
	for _, c := range resp.Cookies() {
		h.Add("Cookie", c.String())
	}
	var tok struct {
		LoginToken string `json:"loginToken"`
	}
	if resp := post(t, r.RcssoURL+"/api/rocketchat/token", "", "", h, &tok); resp.StatusCode != 200 || tok.LoginToken == "" {
		t.Fatalf("API URL after logging in: %d", resp.StatusCode)
	}

	body, _ := json.Marshal(map[string]any{"token": tok.LoginToken})
	var rooms struct {
		Rooms []struct {
			ID   string `json:"_id"`
			Name string `json:"name"`
		} `json:"rooms"`
	}
	post(t, r.RocketChatURL+"/_emu/ddp-rooms", "application/json", string(body), nil, &rooms)
	var names []string
	for _, rm := range rooms.Rooms {
		names = append(names, rm.Name)
	}
	if !slices.Equal(names, []string{"general", "support", "random"}) {
		t.Fatalf("the visitor's rooms: %v, want general (with the welcome), support, random", names)
	}
	body, _ = json.Marshal(map[string]any{"token": tok.LoginToken, "rid": rooms.Rooms[0].ID})
	var hist struct {
		Messages []struct {
			Msg string `json:"msg"`
		} `json:"messages"`
	}
	post(t, r.RocketChatURL+"/_emu/ddp-load-history", "application/json", string(body), nil, &hist)
	if len(hist.Messages) != 1 || !strings.HasPrefix(hist.Messages[0].Msg, "Welcome to Example Corp's chat!") {
		t.Fatalf("#general: %+v, want the welcome message", hist.Messages)
	}
}
