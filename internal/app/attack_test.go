package app

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/rcemu"
)

// Hostile-input tests for the person ↔ chat account link, over HTTP
// against the emulator: nothing a visitor sends may move a Rocket.Chat user
// from the subject it is linked to.

// token is the loginToken of an API URL answer, "" if none.
func token(w *httptest.ResponseRecorder) string {
	var body map[string]string
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return body["loginToken"]
}

// userOf is the Rocket.Chat user a resume token logs in as, "" if none.
func userOf(t *testing.T, emu *rcemu.Server, tok string) string {
	t.Helper()
	if tok == "" {
		return ""
	}
	id, ok := emu.UserIDByResumeToken(tok)
	if !ok {
		t.Fatalf("the emulator does not know the token rcsso handed out")
	}
	return id
}

// Finding 2 (header source): after carol visited, X-Forwarded-User: CAROL
// with carol's placeholder e-mail got carol's chat account; Dave with
// dave's real e-mail got dave's.
func TestAttackHeaderAdoptionTakeover(t *testing.T) {
	for _, vouched := range []bool{false, true} {
		t.Run(map[bool]string{false: "email not vouched (default)", true: "email_verified: true"}[vouched], func(t *testing.T) {
			emu, cfg := emulated(t, rcemu.Config{Profile: "8.x", CreateTokensSecret: "s"})
			cfg.Identity[0].Options["email_verified"] = vouched
			a := build(t, cfg)
			carol := visit(a, "carol", "")
			dave := visit(a, "dave", "dave@example.test")
			if carol.Code != 200 || dave.Code != 200 {
				t.Fatalf("victims' own visits: %d %s, %d %s", carol.Code, carol.Body, dave.Code, dave.Body)
			}
			victims := map[string]string{userOf(t, emu, token(carol)): "carol", userOf(t, emu, token(dave)): "dave"}
			placeholder, _ := provision.AccountEmail(identity.Identity{Subject: "header:carol"}, "users.rcsso.invalid")
			for _, atk := range []struct{ user, email string }{
				{"CAROL", placeholder},
				{"Carol", strings.ToUpper(placeholder)},
				{"Dave", "dave@example.test"},
				{"DAVE", "Dave@Example.test"},
			} {
				w := visit(a, atk.user, atk.email)
				if victim, ok := victims[userOf(t, emu, token(w))]; ok {
					t.Fatalf("%q with e-mail %q got %s's chat account (status %d)", atk.user, atk.email, victim, w.Code)
				}
			}
		})
	}
}

// Finding 2 (JWT source): a token with another sub, a look-alike
// preferred_username and the victim's e-mail with email_verified: true got
// the victim's chat account. Now: 409 with a clear message, never a token.
func TestAttackJWTAdoptionTakeover(t *testing.T) {
	emu, cfg := emulated(t, rcemu.Config{Profile: "8.x", CreateTokensSecret: "s"})
	secret := []byte("a website secret of at least 32 bytes!!")
	path := filepath.Join(t.TempDir(), "jwt.key")
	if err := os.WriteFile(path, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Identity = []config.IdentitySource{{Type: "jwt", Options: map[string]any{"cookie": "site_jwt", "algorithms": []string{"HS256"},
		"secret_file": path, "issuer": "https://www.example.test", "audience": "rcsso"}}}
	a := build(t, cfg)
	call := func(claims jwt.MapClaims) *httptest.ResponseRecorder {
		claims["exp"], claims["iss"], claims["aud"] = time.Now().Add(time.Hour).Unix(), "https://www.example.test", "rcsso"
		signed, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest("POST", "/api/rocketchat/token", nil)
		r.Header.Set("Origin", cfg.RocketChat.URL)
		r.AddCookie(&http.Cookie{Name: "site_jwt", Value: signed})
		w := httptest.NewRecorder()
		a.Handler.ServeHTTP(w, r)
		return w
	}
	victim := call(jwt.MapClaims{"sub": "1001", "preferred_username": "erin", "email": "erin@example.test", "email_verified": true})
	if victim.Code != 200 {
		t.Fatalf("victim's visit: %d %s", victim.Code, victim.Body)
	}
	victimUser := userOf(t, emu, token(victim))
	for _, name := range []string{"erin", "Erin", "erin_", "еrin", "ｅｒｉｎ"} { // Cyrillic е, fullwidth
		w := call(jwt.MapClaims{"sub": "6666", "preferred_username": name, "email": "erin@example.test", "email_verified": true})
		if userOf(t, emu, token(w)) == victimUser {
			t.Fatalf("sub 6666 as %q got the victim's chat account", name)
		}
		if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "conflicts with another Rocket.Chat user") {
			t.Fatalf("sub 6666 as %q: %d %s; want 409 with a clear message", name, w.Code, w.Body)
		}
	}
}

// Finding 2: e-mails in the placeholder domain are refused from every
// source (409), before any Rocket.Chat user is created.
func TestAttackPlaceholderEmailRefused(t *testing.T) {
	emu, cfg := emulated(t, rcemu.Config{Profile: "8.x", CreateTokensSecret: "s"})
	cfg.Identity[0].Options["email_verified"] = true
	a := build(t, cfg)
	w := visit(a, "mallory", "anything@users.rcsso.invalid")
	if w.Code != http.StatusConflict || token(w) != "" {
		t.Fatalf("placeholder-domain e-mail: %d %s; want 409 and no token", w.Code, w.Body)
	}
	if emu.UserCount() != 0 {
		t.Fatalf("%d users created", emu.UserCount())
	}
}
