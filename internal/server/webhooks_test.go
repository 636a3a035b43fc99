package server

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/store"
)

var webhookSecret = []byte("0123456789abcdef0123456789abcdef")

func signed(body string, ts time.Time, secret []byte) map[string]string {
	t := strconv.FormatInt(ts.Unix(), 10)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(t + "." + body))
	return map[string]string{"X-Rcsso-Timestamp": t, "X-Rcsso-Signature": "v1=" + hex.EncodeToString(m.Sum(nil)), "Content-Type": "application/json"}
}

type fakeDeprov struct{ calls []string }

var errNoSuch = errors.New("no such subject")

func (f *fakeDeprov) Deprovision(_ context.Context, subject string, del bool) (string, error) {
	if subject == "local:nobody" {
		return "", errNoSuch
	}
	f.calls = append(f.calls, subject+":"+strconv.FormatBool(del))
	return "U1", nil
}

func TestLogoutWebhook(t *testing.T) {
	s, _, st := newTestServer(t)
	s.o.WebhookSecret = webhookSecret
	ctx := context.Background()
	// alice has a website session and a cached chat token.
	w := httptest.NewRecorder()
	_ = s.o.Sessions.Start(ctx, w, identity.Identity{Subject: "local:alice", Source: "local", Username: "alice"})
	if _, err := s.o.Broker.Token(ctx, identity.Identity{Subject: "local:alice"}, false); err != nil {
		t.Fatal(err)
	}
	body := `{"subject":"local:alice"}`
	cases := []struct {
		name   string
		hdr    map[string]string
		status int
	}{
		{"wrong secret", signed(body, time.Now(), []byte("another secret, 32 bytes long......")), 403},
		{"stale timestamp", signed(body, time.Now().Add(-10*time.Minute), webhookSecret), 403},
		{"no signature", map[string]string{"X-Rcsso-Timestamp": strconv.FormatInt(time.Now().Unix(), 10)}, 403},
	}
	for _, c := range cases {
		if w := do(s, "POST", "/webhooks/logout", c.hdr, body); w.Code != c.status {
			t.Fatalf("%s: %d, want %d", c.name, w.Code, c.status)
		}
	}
	if _, err := st.GetToken(ctx, "local:alice"); err != nil {
		t.Fatal("a refused webhook changed something")
	}
	hdr := signed(body, time.Now(), webhookSecret)
	w = do(s, "POST", "/webhooks/logout", hdr, body)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"sessions_ended":1`) {
		t.Fatalf("logout webhook: %d %s", w.Code, w.Body)
	}
	if _, err := st.GetToken(ctx, "local:alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatal("cached token survived the logout webhook")
	}
	if w := do(s, "POST", "/webhooks/logout", hdr, body); w.Code != http.StatusConflict {
		t.Fatalf("replay: %d, want 409", w.Code)
	}
}

func TestDeprovisionWebhook(t *testing.T) {
	s, _, _ := newTestServer(t)
	s.o.WebhookSecret = webhookSecret
	d := &fakeDeprov{}
	s.o.Deprovisioner, s.o.UnknownSubject = d, errNoSuch
	for _, c := range []struct {
		body   string
		status int
	}{
		{`{"source":"local","id":"alice","action":"delete"}`, 200},
		{`{"subject":"local:bob","action":"deactivate"}`, 200},
		{`{"subject":"local:bob"}`, 400}, // the logout webhook's body: "action" is required
		{`{"subject":"local:nobody","action":"deactivate"}`, 404},
		{`{"subject":"local:carol","action":"explode"}`, 400},
		{`not json`, 400},
		{`{}`, 400},
	} {
		if w := do(s, "POST", "/webhooks/deprovision", signed(c.body, time.Now(), webhookSecret), c.body); w.Code != c.status {
			t.Fatalf("%s: %d %s, want %d", c.body, w.Code, w.Body, c.status)
		}
	}
	if strings.Join(d.calls, ",") != "local:alice:true,local:bob:false" {
		t.Fatalf("calls %v", d.calls)
	}
	s.o.WebhookSecret = nil
	if w := do(s, "POST", "/webhooks/deprovision", nil, `{}`); w.Code != 404 {
		t.Fatalf("webhooks without a secret: %d", w.Code)
	}
}
