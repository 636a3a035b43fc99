package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"

	"github.com/rcsso/rcsso/internal/config"
)

// The website already issues a JWT in a cookie on its registrable domain;
// the chat signs in through the API URL with no rcsso login at all.
func TestJWTCookieThroughAPIURL(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef-website-signing-key")
	secretFile := filepath.Join(t.TempDir(), "jwt.key")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{identity: []config.IdentitySource{{Type: "jwt", Options: map[string]any{
		"cookie": "site_jwt", "algorithms": []string{"HS256"}, "secret_file": secretFile,
		"issuer": "https://www.example.test", "audience": "rcsso",
	}}}})
	issue := func(w http.ResponseWriter, claims jwt.MapClaims) {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
		if err != nil {
			t.Error(err)
		}
		http.SetCookie(w, &http.Cookie{Name: "site_jwt", Value: tok, Domain: "example.test", Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		_, _ = w.Write([]byte("<!doctype html><title>logged in</title>logged in"))
	}
	e.www.mux.HandleFunc("GET /login-as-frank", func(w http.ResponseWriter, _ *http.Request) {
		issue(w, jwt.MapClaims{"iss": "https://www.example.test", "aud": "rcsso", "sub": "u-1001", "preferred_username": "frank",
			"name": "Frank Example", "email": "frank@example.test", "email_verified": true, "exp": time.Now().Add(time.Hour).Unix()})
	})
	e.www.mux.HandleFunc("GET /login-expired", func(w http.ResponseWriter, _ *http.Request) {
		issue(w, jwt.MapClaims{"iss": "https://www.example.test", "aud": "rcsso", "sub": "u-1001", "exp": time.Now().Add(-time.Hour).Unix()})
	})

	// An expired token is "not logged in": the chat shows the IFrame URL
	// and nothing reaches Rocket.Chat.
	ctx := e.browser()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.www.URL+"/login-expired"), chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	if e.stats().UsersCreateCalls != 0 {
		t.Fatal("an expired JWT reached Rocket.Chat")
	}

	ctx = e.browser()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.www.URL+"/login-as-frank"), chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "logged-in")
	if got := e.chatUsername(ctx); got != "frank" {
		t.Fatalf("chat signed in as %q", got)
	}
	if u, _ := e.emu.UserByUsername("frank"); u.Name != "Frank Example" {
		t.Fatalf("Rocket.Chat user %+v", u)
	}
}

// The website answers "who is this?" at an endpoint of its own; rcsso asks
// it with the visitor's website cookie.
func TestWhoamiThroughAPIURL(t *testing.T) {
	www := newPageServer(t, "www.example.test")
	sessions := map[string]map[string]any{"s-grace": {"id": 77, "login": "grace", "display": "Grace Hopper", "mail": "grace@example.test"}}
	www.mux.HandleFunc("GET /api/me", func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie("site_session")
		if err != nil || sessions[c.Value] == nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"user": sessions[c.Value]})
	})
	www.mux.HandleFunc("GET /login-as-grace", func(w http.ResponseWriter, _ *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "site_session", Value: "s-grace", Domain: "example.test", Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		_, _ = w.Write([]byte("ok"))
	})
	e := newEnv(t, envOptions{identity: []config.IdentitySource{{Type: "whoami", Options: map[string]any{
		"url": "http://127.0.0.1:" + www.URL[len("http://www.example.test:"):] + "/api/me", "cookies": []string{"site_session"},
		"claims": map[string]any{"subject": "user.id", "username": "user.login", "name": "user.display", "email": "user.mail"},
	}}}})
	ctx := e.browser()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe") // no website session yet
	if err := chromedp.Do(ctx, chromedp.Navigate(www.URL+"/login-as-grace"), chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "logged-in")
	if got := e.chatUsername(ctx); got != "grace" {
		t.Fatalf("chat signed in as %q", got)
	}
	if u, _ := e.emu.UserByUsername("grace"); u.Name != "Grace Hopper" {
		t.Fatalf("Rocket.Chat user %+v", u)
	}
}
