package oauth

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/oauthprovider"
	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// gateSetup is an emulator on ec whose Custom OAuth service "rcsso" (and,
// with wordpress, the built-in WordPress provider) point at rcsso's
// provider, and a Minter choosing its carrier with a Detector on clk.
func gateSetup(t *testing.T, ec rcemu.Config, wordpress bool, clk *clock) (*rcemu.Server, *Minter, *Detector) {
	t.Helper()
	k := sha256.Sum256([]byte("provider key"))
	ps, _ := sealer.New(k[:])
	prov, err := oauthprovider.New(oauthprovider.Config{ServiceName: "rcsso", ClientID: "rc", ClientSecret: "secret",
		RocketChatURL: "http://chat.invalid", BaseURL: "http://sso.invalid/oauth", Sealer: ps})
	if err != nil {
		t.Fatal(err)
	}
	provSrv := httptest.NewServer(http.StripPrefix("/oauth/", prov.Handler()))
	t.Cleanup(provSrv.Close)
	ec.OAuthServices = []rcemu.OAuthService{{Name: "rcsso", IdentityURL: provSrv.URL + "/oauth/identity", TokenSentVia: "header",
		UsernameField: "username", MergeUsers: true}}
	if wordpress {
		ec.OAuthServices = append(ec.OAuthServices, rcemu.OAuthService{Name: "wordpress", Builtin: true, ServerURL: provSrv.URL,
			IdentityURL: provSrv.URL + "/oauth/identity", TokenSentVia: "header"})
	}
	ec.AdminPassword, ec.BcryptCost, ec.DisableRateLimit = "pw", bcrypt.MinCost, true
	emu, err := rcemu.New(ec)
	if err != nil {
		t.Fatal(err)
	}
	emuSrv := httptest.NewServer(emu.Handler())
	t.Cleanup(emuSrv.Close)
	rc, _ := rocketchat.New(rocketchat.Options{BaseURL: emuSrv.URL})
	d := &Detector{RC: rc, ServiceName: "rcsso", IdentityPath: "/oauth/identity", Now: clk.Now}
	return emu, &Minter{ResumeSession: mint.ResumeSession{RC: rc}, Issuer: prov, ServiceName: "rcsso", Carriers: d}, d
}

func person(name string) identity.Identity {
	return identity.Identity{Subject: "local:" + name, Username: name, Name: name, Email: name + "@example.test", EmailVerified: true}
}

// A licence that lapses while rcsso runs: the next login through the
// Custom OAuth service fails, the Detector looks again and the login goes
// through the ungated WordPress provider. Forced detections are bounded.
func TestCarrierFollowsTheLicenceAtRunTime(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	emu, m, d := gateSetup(t, rcemu.Config{Profile: "9.0", OAuthEnterprise: true}, true, clk)
	tok, err := m.Mint(t.Context(), mint.Request{Identity: person("ann")})
	if err != nil || emu.OAuthID(tok.UserID, "rcsso") != "local:ann" {
		t.Fatalf("with the module: %+v, %v", tok, err)
	}
	emu.SetOAuthEnterprise(false)
	// Within RecheckAfter the failure is reported as it is.
	if _, err := m.Mint(t.Context(), mint.Request{Identity: person("ben")}); err == nil {
		t.Fatal("the gated service still logged people in")
	}
	clk.Add(11 * time.Second)
	tok, err = m.Mint(t.Context(), mint.Request{Identity: person("ben")})
	if err != nil || emu.OAuthID(tok.UserID, "wordpress") != "local:ben" {
		t.Fatalf("after the licence lapsed: %+v, %v", tok, err)
	}
	if c, ok := d.Last(); !ok || c.Service != "wordpress" || !c.Builtin || !strings.Contains(c.Note, "not gated") {
		t.Fatalf("carrier: %+v %v", c, ok)
	}
}

// No ungated carrier left: the mint fails with mint.ErrIncapable naming
// create-token (a 502 with a message for the administrator, not a 503
// "Rocket.Chat cannot be reached").
func TestNoCarrierLeftIsIncapable(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)}
	emu, m, _ := gateSetup(t, rcemu.Config{Profile: "9.0", OAuthEnterprise: true}, false, clk)
	if _, err := m.Mint(t.Context(), mint.Request{Identity: person("cid")}); err != nil {
		t.Fatal(err)
	}
	emu.SetOAuthEnterprise(false)
	clk.Add(time.Minute)
	_, err := m.Mint(t.Context(), mint.Request{Identity: person("dee")})
	if !errors.Is(err, mint.ErrIncapable) || !strings.Contains(err.Error(), "create-token") {
		t.Fatalf("err = %v", err)
	}
}

// Detection per Rocket.Chat version and configuration.
func TestDetector(t *testing.T) {
	cases := []struct {
		name      string
		ec        rcemu.Config
		wordpress bool
		service   string // "" → ErrIncapable
		errSub    string
	}{
		{"8.x custom", rcemu.Config{Profile: "8.x"}, false, "rcsso", ""},
		{"9.0 with module", rcemu.Config{Profile: "9.0", OAuthEnterprise: true}, true, "rcsso", ""},
		{"9.0 without module, WordPress", rcemu.Config{Profile: "9.0"}, true, "wordpress", ""},
		{"9.0 without module", rcemu.Config{Profile: "9.0"}, false, "", "create-token"},
		{"9.0 WordPress removed (#41992)", rcemu.Config{Profile: "9.0", BuiltinOAuthRemoved: true}, true, "", "create-token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, d := gateSetup(t, c.ec, c.wordpress, &clock{t: time.Now()})
			got, err := d.Current(t.Context())
			if c.service == "" {
				if !errors.Is(err, mint.ErrIncapable) || !strings.Contains(err.Error(), c.errSub) {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil || got.Service != c.service {
				t.Fatalf("carrier %+v, %v; want %s", got, err, c.service)
			}
		})
	}
	// 8.x with the service switched off (or misnamed) is a misconfiguration.
	_, _, d := gateSetup(t, rcemu.Config{Profile: "8.x"}, false, &clock{t: time.Now()})
	d.ServiceName = "other"
	if _, err := d.Current(t.Context()); !errors.Is(err, mint.ErrIncapable) || !strings.Contains(err.Error(), "Administration → Settings → OAuth") {
		t.Fatalf("missing service on 8.x: %v", err)
	}
	// A server without settings.oauth is assumed to run the service;
	// a server that cannot be asked is not a verdict.
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/info" {
			_, _ = w.Write([]byte(`{"version":"3.18.0","success":true}`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"status":"error","message":"API endpoint does not exist"}`))
	}))
	defer old.Close()
	rc, _ := rocketchat.New(rocketchat.Options{BaseURL: old.URL})
	if c, err := (&Detector{RC: rc, ServiceName: "rcsso"}).Current(t.Context()); err != nil || c.Service != "rcsso" {
		t.Fatalf("old server: %+v, %v", c, err)
	}
	down, _ := rocketchat.New(rocketchat.Options{BaseURL: "http://127.0.0.1:1", Timeout: time.Second})
	if _, err := (&Detector{RC: down, ServiceName: "rcsso"}).Current(t.Context()); err == nil || errors.Is(err, mint.ErrIncapable) {
		t.Fatalf("unreachable server: %v", err)
	}
}

// WordPress is a carrier only when it points at rcsso's identity route.
func TestPointsAt(t *testing.T) {
	for path, want := range map[string]bool{
		"/oauth/identity": true, "/oauth/identity/": true, "https://sso.example.com/oauth/identity": true,
		"/oauth/me": false, "": false, "https://public-api.wordpress.com/rest/v1/me": false, "/x/oauth/identity": false,
	} {
		if got := pointsAt(rocketchat.OAuthService{Service: "wordpress", IdentityPath: path}, "/oauth/identity"); got != want {
			t.Errorf("pointsAt(%q) = %v, want %v", path, got, want)
		}
	}
}

// Whatever settings.oauth holds, the choice is the configured service,
// wordpress (built-in, only from 9.0), or an ErrIncapable verdict.
func FuzzChooseCarrier(f *testing.F) {
	f.Add([]byte(`[{"service":"rcsso","custom":true}]`), "9.0.0", "rcsso")
	f.Add([]byte(`[{"service":"wordpress","identityPath":"/oauth/identity"}]`), "9.0.0", "rcsso")
	f.Add([]byte(`[{"name":"google"},{"service":"WordPress","identityPath":"https://x/oauth/identity"}]`), "10.1.0-rc.1", "Rcsso")
	f.Add([]byte(`[{"service":"wordpress","identityPath":"/oauth/me"}]`), "8.7.0", "rcsso")
	f.Add([]byte(`[null,{},{"service":""}]`), "", "")
	f.Fuzz(func(t *testing.T, body []byte, version, name string) {
		var svcs []rocketchat.OAuthService
		if json.Unmarshal(body, &svcs) != nil {
			return
		}
		info := rocketchat.ServerInfo{Version: version}
		c, err := chooseCarrier(info, svcs, name, "/oauth/identity")
		switch {
		case err != nil:
			if !errors.Is(err, mint.ErrIncapable) || c != (Carrier{}) {
				t.Fatalf("error %v with carrier %+v", err, c)
			}
		case c.Service == name && !c.Builtin:
		case c.Service == "wordpress" && c.Builtin && info.Major() >= 9:
		default:
			t.Fatalf("carrier %+v for service %q on %q", c, name, version)
		}
	})
}
