package e2e

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/rcsso/rcsso/internal/config"
)

// oidcUser is a provider account whose UserInfo answer carries "sub"
// (mockoidc's default user omits it, which OIDC Core §5.3.2 forbids).
type oidcUser struct{}

func (oidcUser) ID() string { return "1234567890" }

func (oidcUser) Userinfo([]string) ([]byte, error) {
	return json.Marshal(map[string]any{"sub": "1234567890", "preferred_username": "jane.doe", "name": "Jane Doe",
		"email": "jane.doe@example.com", "email_verified": true})
}

func (oidcUser) Claims(_ []string, base *mockoidc.IDTokenClaims) (jwt.Claims, error) {
	return &struct {
		*mockoidc.IDTokenClaims
		Email             string `json:"email"`
		EmailVerified     bool   `json:"email_verified"`
		PreferredUsername string `json:"preferred_username"`
		Name              string `json:"name"`
	}{base, "jane.doe@example.com", true, "jane.doe", "Jane Doe"}, nil
}

func startOIDCProvider(t *testing.T) *mockoidc.MockOIDC {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Keypair.KeyID(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

// The IFrame URL offers the OIDC provider; its login runs in a popup (the
// provider's pages refuse to be framed), and the chat signs in when the
// popup is done. A back-channel logout from the provider then ends both the
// website session and the Rocket.Chat session.
func TestOIDCPopupAndBackChannelLogout(t *testing.T) {
	m := startOIDCProvider(t)
	e := newEnv(t, envOptions{identity: []config.IdentitySource{
		{Type: "oidc", Name: "idp", Options: map[string]any{"label": "Log in with Example ID", "issuer": m.Issuer(), "client_id": m.ClientID, "client_secret": m.ClientSecret}},
		{Type: "local"},
	}})
	m.QueueUser(oidcUser{})
	ctx := e.browser()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	e.clickInIframe(ctx, "#rc-login-iframe", "#login-idp") // opens the provider in a popup
	e.waitChat(ctx, "logged-in")
	if got := e.chatUsername(ctx); got != "jane.doe" {
		t.Fatalf("chat logged in as %q", got)
	}
	u, ok := e.emu.UserByUsername("jane.doe")
	if !ok || u.ResumeTokens != 1 || u.Emails[0].Address != "jane.doe@example.com" {
		t.Fatalf("Rocket.Chat user %+v", u)
	}

	// The provider tells rcsso that the person logged out.
	logoutToken, err := m.Keypair.SignJWT(jwt.MapClaims{
		"iss": m.Issuer(), "aud": m.ClientID, "sub": "1234567890", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
		"jti": "logout-1", "events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.PostForm(strings.Replace(e.ssoURL, "sso.example.test", "127.0.0.1", 1)+"/auth/idp/backchannel-logout", url.Values{"logout_token": {logoutToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("back-channel logout: %d", resp.StatusCode)
	}
	if u, _ := e.emu.UserByUsername("jane.doe"); u.ResumeTokens != 0 {
		t.Fatalf("Rocket.Chat session survived the back-channel logout (%d tokens)", u.ResumeTokens)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`localStorage.clear()`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
}
