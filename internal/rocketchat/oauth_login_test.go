package rocketchat

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// testAccessToken is a Custom OAuth access token; like every other test
// secret it must never appear in errors, logs or URLs.
const testAccessToken = "oauth-at-SECRET-3e9dQx"

func TestLoginOAuth(t *testing.T) {
	for _, body := range []string{
		`{"status":"success","data":{"userId":"u1","authToken":"` + testNewToken + `",` + meAlice + `}}`,
		`{"status":"success","success":true,"data":{"userId":"u1","authToken":"` + testNewToken + `",` + meAlice + `}}`,
	} {
		c, ts := newServer(t, static(200, body))
		res, err := c.LoginOAuth(context.Background(), "rcsso", testAccessToken, 300)
		if err != nil {
			t.Fatal(err)
		}
		if res.UserID != "u1" || res.AuthToken != testNewToken || res.Me == nil || res.Me.Username != "alice" {
			t.Fatalf("result = %s, me = %#v", res, res.Me)
		}
		r := ts.last(t)
		checkJSONPost(t, r, "/api/v1/login")
		checkNoAuthHeaders(t, r)
		jsonEqual(t, r.Body, `{"serviceName":"rcsso","accessToken":"`+testAccessToken+`","expiresIn":300}`)
		if r.RawQuery != "" {
			t.Errorf("query = %q, want none", r.RawQuery)
		}
	}
}

func TestLoginOAuthErrors(t *testing.T) {
	tests := []struct {
		name, body     string
		status         int
		wantType       string
		wantMsg        string
		wantCode403    bool
		wantRateLimit  bool
		wantUnauthPred bool
	}{
		{name: "unknown service 6.x", status: 401, body: `{"status":"error","message":"Unexpected AccessToken service nope"}`,
			wantMsg: "Unexpected AccessToken service nope", wantUnauthPred: true},
		{name: "identity failed 7.x", status: 401,
			body:    `{"status":"error","success":false,"message":"Failed to fetch identity from rcsso at http://sso/oauth/identity. Unauthorized"}`,
			wantMsg: "Failed to fetch identity from rcsso at http://sso/oauth/identity. Unauthorized", wantUnauthPred: true},
		{name: "username taken without merge", status: 401,
			body:     `{"status":"error","error":"CustomOAuth","message":"User with username alice already exists"}`,
			wantType: "CustomOAuth", wantMsg: "User with username alice already exists", wantUnauthPred: true},
		{name: "meteor 403 duplicate", status: 401, body: `{"status":"error","error":403,"message":"Username already exists."}`,
			wantMsg: "Username already exists.", wantCode403: true, wantUnauthPred: true},
		{name: "8.x bare", status: 401, body: `{"success":false}`, wantUnauthPred: true},
		{name: "rate limited", status: 429,
			body:     `{"success":false,"error":"Error, too many requests. Please slow down. You must wait 7 seconds before trying this endpoint again. [error-too-many-requests]"}`,
			wantType: "error-too-many-requests", wantMsg: "Error, too many requests. Please slow down. You must wait 7 seconds before trying this endpoint again.",
			wantRateLimit: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ts := newServer(t, static(tt.status, tt.body))
			_, err := c.LoginOAuth(context.Background(), "rcsso", testAccessToken, 300)
			e := mustError(t, err)
			if e.Status != tt.status || e.Endpoint != "login" || e.ErrorType != tt.wantType || e.Message != tt.wantMsg {
				t.Errorf("got {Status:%d Endpoint:%q ErrorType:%q Message:%q}, want {%d login %q %q}",
					e.Status, e.Endpoint, e.ErrorType, e.Message, tt.status, tt.wantType, tt.wantMsg)
			}
			if tt.wantCode403 && e.code != 403 {
				t.Errorf("code = %d, want 403", e.code)
			}
			if got := IsUnauthorized(err); got != tt.wantUnauthPred {
				t.Errorf("IsUnauthorized = %v, want %v", got, tt.wantUnauthPred)
			}
			if _, limited := IsRateLimited(err); limited != tt.wantRateLimit {
				t.Errorf("IsRateLimited = %v, want %v", limited, tt.wantRateLimit)
			}
			if ts.hits() != 1 {
				t.Errorf("hits = %d, want 1 (POST never retried)", ts.hits())
			}
		})
	}
}

// The access token is a secret: a server that echoes it into its error
// message must not make it appear in the error.
func TestLoginOAuthRedactsAccessToken(t *testing.T) {
	var ts *testServer
	var c *Client
	c, ts = newServer(t, func(w http.ResponseWriter, _ *http.Request, hit int) {
		ts.mu.Lock()
		body := string(ts.reqs[hit-1].Body)
		ts.mu.Unlock()
		b, _ := json.Marshal(map[string]any{"status": "error", "message": "bad token in " + body})
		reply(w, 401, string(b))
	})
	_, err := c.LoginOAuth(context.Background(), "rcsso", testAccessToken, 300)
	e := mustError(t, err)
	if strings.Contains(e.Message, testAccessToken) || strings.Contains(err.Error(), testAccessToken) ||
		!strings.Contains(e.Message, "[redacted]") {
		t.Fatalf("access token not redacted: %q", e.Message)
	}
	if strings.Contains(ts.logs.String(), testAccessToken) {
		t.Fatal("access token logged")
	}
}

func TestLoginOAuthInvalidArguments(t *testing.T) {
	c, ts := newServer(t, static(200, `{"success":true}`))
	ctx := context.Background()
	for name, f := range map[string]func() error{
		"no service":       func() error { _, err := c.LoginOAuth(ctx, "", testAccessToken, 300); return err },
		"no token":         func() error { _, err := c.LoginOAuth(ctx, "rcsso", "", 300); return err },
		"negative expires": func() error { _, err := c.LoginOAuth(ctx, "rcsso", testAccessToken, -1); return err },
	} {
		e := mustError(t, f())
		if e.Status != 0 || e.Message == "" {
			t.Errorf("%s: %+v", name, e)
		}
	}
	if ts.hits() != 0 {
		t.Fatalf("invalid calls reached the server %d times", ts.hits())
	}
}
