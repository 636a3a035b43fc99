package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/websession"
)

// Finding 5 (webhook replay): the replay memory keyed on the hex signature
// as sent, so the same signature in upper case was accepted again, and it
// lived in one process only, so a restart (or another instance) accepted
// it too. The MAC itself is now remembered, in the store.
func TestAttackWebhookReplay(t *testing.T) {
	s, _, st := newTestServer(t)
	s.o.WebhookSecret = webhookSecret
	body := `{"subject":"local:alice"}`
	hdr := signed(body, time.Now(), webhookSecret)
	if w := do(s, "POST", "/webhooks/logout", hdr, body); w.Code != 200 {
		t.Fatalf("first delivery: %d %s", w.Code, w.Body)
	}
	variants := map[string]string{
		"upper-case hex":      "v1=" + strings.ToUpper(strings.TrimPrefix(hdr["X-Rcsso-Signature"], "v1=")),
		"mixed-case hex":      "v1=" + mixCase(strings.TrimPrefix(hdr["X-Rcsso-Signature"], "v1=")),
		"padded":              "  " + hdr["X-Rcsso-Signature"] + " ",
		"beside a bogus one":  "v1=00," + hdr["X-Rcsso-Signature"],
		"listed twice":        hdr["X-Rcsso-Signature"] + "," + hdr["X-Rcsso-Signature"],
		"as sent (same file)": hdr["X-Rcsso-Signature"],
	}
	for name, sig := range variants {
		h := map[string]string{"X-Rcsso-Timestamp": hdr["X-Rcsso-Timestamp"], "X-Rcsso-Signature": sig, "Content-Type": "application/json"}
		if w := do(s, "POST", "/webhooks/logout", h, body); w.Code != http.StatusConflict {
			t.Errorf("replay (%s): %d %s, want 409", name, w.Code, w.Body)
		}
	}
	// A restarted rcsso, or another instance on the same store.
	other := newServerOn(t, st)
	other.o.WebhookSecret = webhookSecret
	if w := do(other, "POST", "/webhooks/logout", hdr, body); w.Code != http.StatusConflict {
		t.Fatalf("replay to another rcsso on the same store: %d %s, want 409", w.Code, w.Body)
	}
}

func mixCase(s string) string {
	b := []byte(s)
	for i := range b {
		if i%2 == 0 && b[i] >= 'a' && b[i] <= 'f' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// Finding 7: /embed/codes accepted one signed request for its whole 5-minute
// window; a captured request is now useless after 60 s.
func TestAttackEmbedCodesWindow(t *testing.T) {
	s, _, _ := newTestServer(t)
	s.o.WebhookSecret = webhookSecret
	body := `{"subject":"jwt:u1","origin":"http://www.example.test","username":"u1"}`
	for _, age := range []time.Duration{61 * time.Second, 4 * time.Minute, -61 * time.Second} {
		if w := do(s, "POST", "/embed/codes", signed(body, time.Now().Add(-age), webhookSecret), body); w.Code != http.StatusForbidden {
			t.Errorf("request signed %s ago: %d %s, want 403", age, w.Code, w.Body)
		}
	}
	if w := do(s, "POST", "/embed/codes", signed(body, time.Now().Add(-50*time.Second), webhookSecret), body); w.Code != 200 {
		t.Fatalf("fresh request: %d %s", w.Code, w.Body)
	}
}

// Finding 6: /embed/redeem acted for a bare subject, so profile sync saw a
// person without name or e-mail and wrote the placeholder address (marked
// verified) over the real one. The code now carries the whole person.
func TestAttackEmbedRedeemCarriesWholeIdentity(t *testing.T) {
	st := memory.New()
	rec := &recordingProv{}
	s := newServerWith(t, st, rec)
	s.o.WebhookSecret = webhookSecret
	body := `{"subject":"shop:c-7","origin":"http://www.example.test","username":"carla","name":"Carla","email":"carla@example.test","email_verified":true}`
	w := do(s, "POST", "/embed/codes", signed(body, time.Now(), webhookSecret), body)
	if w.Code != 200 {
		t.Fatalf("/embed/codes: %d %s", w.Code, w.Body)
	}
	var code struct{ Code string }
	_ = json.Unmarshal(w.Body.Bytes(), &code)
	s.o.Broker.WaitSync()
	w = do(s, "POST", "/embed/redeem", map[string]string{"Origin": "http://www.example.test", "Content-Type": "application/json"}, `{"code":"`+code.Code+`"}`)
	if w.Code != 200 {
		t.Fatalf("/embed/redeem: %d %s", w.Code, w.Body)
	}
	s.o.Broker.WaitSync()
	for _, id := range rec.seen() {
		if id.Subject == "shop:c-7" && (id.Email != "carla@example.test" || !id.EmailVerified || id.Name != "Carla" || id.Username != "carla") {
			t.Fatalf("profile sync was given %+v: not the person the back end described", id)
		}
	}
	if len(rec.seen()) == 0 {
		t.Fatal("profile sync never ran")
	}
}

// recordingProv links every subject and records what profile sync sees.
type recordingProv struct {
	mu  sync.Mutex
	ids []identity.Identity
}

func (p *recordingProv) Ensure(_ context.Context, id identity.Identity) (store.Link, error) {
	return store.Link{Subject: id.Subject, UserID: "U-" + id.Subject}, nil
}

func (p *recordingProv) ProfileDigest(id identity.Identity) string {
	return id.Name + "|" + id.Email
}

func (p *recordingProv) Sync(_ context.Context, id identity.Identity) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids = append(p.ids, id)
	return true, nil // in sync: a later request syncs only if its person differs
}

func (p *recordingProv) seen() []identity.Identity {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]identity.Identity(nil), p.ids...)
}

// newServerWith is newTestServer's wiring on st with provisioner prov.
func newServerWith(t *testing.T, st store.Store, prov mint.Provisioner) *Server {
	t.Helper()
	seal, _ := sealer.New(make([]byte, 32))
	b := mint.NewBroker(st, seal, &countingMinter{}, prov, mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour}, nil)
	sessions := websession.New(st, websession.Options{CookieName: "rcsso_session", SameSite: http.SameSiteLaxMode, TTL: time.Hour})
	pub, _ := url.Parse("http://sso.example.test")
	return New(Options{PublicURL: pub, RocketChatOrigin: rcOrigin, WebsiteOrigins: []string{"http://www.example.test"},
		Sessions: sessions, Broker: b, Store: st, RC: nil})
}

// newServerOn is a second rcsso on the same store.
func newServerOn(t *testing.T, st store.Store) *Server {
	return newServerWith(t, st, linkProv{})
}

// The signature covers the timestamp and the body, not the endpoint: a
// signed request captured on its way to one endpoint (a logout webhook, an
// /embed/codes call, sent on every page view of a host page using codes)
// must not be accepted by another. Before, {"subject":"local:alice"} signed
// for /webhooks/logout deactivated alice's Rocket.Chat user when sent to
// /webhooks/deprovision (action defaulted to deactivate), and an
// /embed/codes body did too (its extra fields were ignored).
func TestAttackWebhookCrossEndpointReplay(t *testing.T) {
	s, _, _ := newTestServer(t)
	s.o.WebhookSecret = webhookSecret
	d := &fakeDeprov{}
	s.o.Deprovisioner, s.o.UnknownSubject = d, errNoSuch
	logout := `{"subject":"local:alice"}`
	codes := `{"subject":"local:alice","origin":"http://www.example.test","username":"alice"}`
	deprovision := `{"subject":"local:alice","action":"deactivate"}`
	for _, c := range []struct{ body, to string }{
		{logout, "/webhooks/deprovision"},
		{codes, "/webhooks/deprovision"},
		{codes, "/webhooks/logout"},
		{deprovision, "/webhooks/logout"},
		{deprovision, "/embed/codes"},
		{logout, "/embed/codes"},
	} {
		w := do(s, "POST", c.to, signed(c.body, time.Now(), webhookSecret), c.body)
		if w.Code != http.StatusBadRequest {
			t.Errorf("%s sent to %s: %d %s, want 400", c.body, c.to, w.Code, w.Body)
		}
	}
	if len(d.calls) != 0 {
		t.Fatalf("a body signed for another endpoint deprovisioned: %v", d.calls)
	}
	// Each endpoint's own body works.
	for _, c := range []struct{ body, to string }{{deprovision, "/webhooks/deprovision"}, {logout, "/webhooks/logout"}, {codes, "/embed/codes"}} {
		if w := do(s, "POST", c.to, signed(c.body, time.Now(), webhookSecret), c.body); w.Code != 200 {
			t.Errorf("%s: %d %s", c.to, w.Code, w.Body)
		}
	}
}
