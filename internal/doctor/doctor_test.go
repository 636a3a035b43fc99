package doctor_test

import (
	"context"
	"errors"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/app"
	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/doctor"
	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/testing/mongotest"
)

// The tests below prove each check: a deployment that is right in every
// way (an emulated Rocket.Chat set up as rcsso needs, a reverse proxy
// sending frame-ancestors, rcsso itself serving at public_url) is all OK;
// each misconfiguration of the emulator (or of rcsso's configuration) makes
// its check FAIL or WARN with the message an operator needs.

const website = "https://www.example.test"

// deployment is one emulated deployment.
type deployment struct {
	// emu adjusts the emulator before it starts (its iframe settings
	// already point at rcsso).
	emu func(ec *rcemu.Config)
	// cfg adjusts rcsso's configuration (URLs and credentials set).
	cfg func(e *rcemu.Server, cfg *config.Config)
	// csp is the Content-Security-Policy Rocket.Chat's reverse proxy adds
	// ("" none; default: frame-ancestors of the website).
	csp *string
	// noRcsso: do not start rcsso at public_url.
	noRcsso bool
	// doctor adjusts the doctor before it runs.
	doctor func(d *doctor.Doctor)
}

// run starts the deployment and returns the doctor's report.
func (dp deployment) run(t *testing.T) doctor.Report {
	t.Helper()
	rep, _ := dp.runEmu(t)
	return rep
}

func (dp deployment) runEmu(t *testing.T) (doctor.Report, *rcemu.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pub := "http://" + ln.Addr().String()
	ec := rcemu.Config{AdminPassword: "pw", AdminPAT: "pat", BcryptCost: bcrypt.MinCost, CreateTokensSecret: "s",
		SupportExpires: time.Now().Add(120 * 24 * time.Hour),
		Settings: map[string]any{
			"Iframe_Integration_receive_enable": true, "Iframe_Integration_receive_origin": website,
			"Iframe_Integration_send_enable": true, "Iframe_Integration_send_target_origin": website,
		}}
	ec.EnableIframeAuth(pub+"/login", pub+"/api/rocketchat/token", "POST")
	if dp.emu != nil {
		dp.emu(&ec)
	}
	emu, err := rcemu.New(ec)
	if err != nil {
		t.Fatal(err)
	}
	csp := "frame-ancestors 'self' " + website
	if dp.csp != nil {
		csp = *dp.csp
	}
	es := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		emu.Handler().ServeHTTP(&proxyHeader{ResponseWriter: w, csp: csp}, r)
	}))
	t.Cleanup(es.Close)
	cfg := config.Default()
	cfg.Audit.Path = "off"
	cfg.PublicURL = pub
	cfg.RocketChat.URL = es.URL
	cfg.RocketChat.AdminUserID, cfg.RocketChat.AdminToken, cfg.RocketChat.CreateTokensSecret = emu.AdminID(), "pat", "s"
	cfg.Identity = []config.IdentitySource{{Type: "header", Options: map[string]any{"user_header": "X-Forwarded-User", "trusted_proxies": []string{"192.0.2.1"}}}}
	cfg.Store = config.Store{Type: "memory"}
	cfg.Website.Origins = []string{website}
	if dp.cfg != nil {
		dp.cfg(emu, &cfg)
	}
	log := slog.New(slog.DiscardHandler)
	if a, err := app.Build(t.Context(), cfg, log); err == nil && !dp.noRcsso {
		hs := &http.Server{Handler: a.Handler}
		go func() { _ = hs.Serve(ln) }()
		t.Cleanup(func() { _ = hs.Close(); _ = a.Close() })
	} else {
		ln.Close()
		if err == nil {
			_ = a.Close()
		}
	}
	d, err := app.NewDoctor(t.Context(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if dp.doctor != nil {
		dp.doctor(d)
	}
	return d.Run(t.Context()), emu
}

// proxyHeader adds the reverse proxy's Content-Security-Policy to the
// emulator's answers (a second header when the emulator sends one).
type proxyHeader struct {
	http.ResponseWriter
	csp   string
	wrote bool
}

func (p *proxyHeader) WriteHeader(code int) {
	if !p.wrote && p.csp != "" {
		p.Header().Add("Content-Security-Policy", p.csp)
	}
	p.wrote = true
	p.ResponseWriter.WriteHeader(code)
}

func (p *proxyHeader) Write(b []byte) (int, error) {
	if !p.wrote {
		p.WriteHeader(http.StatusOK)
	}
	return p.ResponseWriter.Write(b)
}

// want fails unless the report has a line of check with status whose
// message (or fix) contains every part.
func want(t *testing.T, rep doctor.Report, check string, status doctor.Status, parts ...string) {
	t.Helper()
	for _, r := range rep.Results {
		if r.Check != check || r.Status != status {
			continue
		}
		text := r.Message + " fix: " + r.Fix
		found := true
		for _, p := range parts {
			found = found && strings.Contains(text, p)
		}
		if found {
			return
		}
	}
	t.Errorf("no %s line %s containing %q in:\n%s", status, check, parts, dump(rep))
}

func dump(rep doctor.Report) string {
	var b strings.Builder
	for _, r := range rep.Results {
		b.WriteString(r.String() + "\n")
	}
	return b.String()
}

func ptr[T any](v T) *T { return &v }

// A deployment set up as rcsso needs is all OK, for every check.
func TestHealthyDeploymentIsAllOK(t *testing.T) {
	rep := deployment{}.run(t)
	if rep.Summary.Fail != 0 || rep.Summary.Warn != 0 {
		t.Fatalf("healthy deployment:\n%s", dump(rep))
	}
	for _, c := range []string{"rocketchat", "iframe-login", "iframe-integration", "framing", "reach", "permissions", "create-token", "rate-limit", "two-factor"} {
		want(t, rep, c, doctor.OK)
	}
	want(t, rep, "rocketchat", doctor.OK, "supported until")
	want(t, rep, "reach", doctor.OK, "allowing credentials")
}

func TestRocketChatAndSupportWindow(t *testing.T) {
	want(t, deployment{noRcsso: true, cfg: func(_ *rcemu.Server, c *config.Config) { c.RocketChat.URL = "http://127.0.0.1:1" }}.run(t),
		"rocketchat", doctor.Fail, "does not answer at http://127.0.0.1:1", "rocketchat.url")
	want(t, deployment{emu: func(ec *rcemu.Config) { ec.SupportExpires = time.Now().Add(-24 * time.Hour) }}.run(t),
		"support-window", doctor.Fail, "left its support window", "mobile and desktop apps refuse")
	want(t, deployment{emu: func(ec *rcemu.Config) { ec.SupportExpires = time.Now().Add(10 * 24 * time.Hour) }}.run(t),
		"support-window", doctor.Warn, "support ends on")
	want(t, deployment{emu: func(ec *rcemu.Config) { ec.SupportExpires = time.Time{} }}.run(t),
		"rocketchat", doctor.OK, "publishes no support window")
}

// Iframe login switched off in Rocket.Chat is a FAIL (it was two WARNs on
// /diagnostics and nothing at start-up), and so is each setting that
// points elsewhere.
func TestIframeLogin(t *testing.T) {
	set := func(k string, v any) deployment {
		return deployment{emu: func(ec *rcemu.Config) { ec.Settings[k] = v }}
	}
	want(t, set("Accounts_iframe_enabled", false).run(t), "iframe-login", doctor.Fail, "Accounts_iframe_enabled is off", "switch Enabled on", "rcsso setup")
	want(t, set("Accounts_Iframe_api_url", "https://old.example.test/api").run(t), "iframe-login", doctor.Fail,
		`Accounts_Iframe_api_url is "https://old.example.test/api"`, "set API URL to http://127.0.0.1:")
	want(t, set("Accounts_iframe_url", "").run(t), "iframe-login", doctor.Fail, `Accounts_iframe_url is ""`, "set Iframe URL to")
	want(t, set("Accounts_Iframe_api_method", "PUT").run(t), "iframe-login", doctor.Fail, `Accounts_Iframe_api_method is "PUT"`)
}

func TestIframeIntegration(t *testing.T) {
	set := func(k string, v any) deployment {
		return deployment{emu: func(ec *rcemu.Config) { ec.Settings[k] = v }}
	}
	want(t, set("Iframe_Integration_receive_enable", false).run(t), "iframe-integration", doctor.Fail,
		"Iframe_Integration_receive_enable is off", "rcsso-token-sent", "Receive Origins to "+website)
	want(t, set("Iframe_Integration_receive_origin", "https://shop.example.test").run(t), "iframe-integration", doctor.Fail,
		"ignores embed.js's commands from "+website, "add "+website)
	want(t, set("Iframe_Integration_receive_origin", "https://shop.example.test, "+website).run(t), "iframe-integration", doctor.Fail,
		"remove the spaces around "+website)
	want(t, set("Iframe_Integration_receive_origin", "*").run(t), "iframe-integration", doctor.Warn, "is *")
	want(t, set("Iframe_Integration_send_enable", false).run(t), "iframe-integration", doctor.Warn, "Iframe_Integration_send_enable is off")
	want(t, set("Iframe_Integration_send_target_origin", "*").run(t), "iframe-integration", doctor.Warn, "Iframe_Integration_send_target_origin is *")
	want(t, deployment{cfg: func(_ *rcemu.Server, c *config.Config) { c.Website.Origins = nil }}.run(t), "iframe-integration", doctor.OK, "not used")
}

func TestFraming(t *testing.T) {
	want(t, deployment{emu: func(ec *rcemu.Config) { ec.Settings["Iframe_Restrict_Access"] = true }}.run(t), "framing", doctor.Fail,
		"X-Frame-Options: sameorigin", "(Iframe_Restrict_Access is on)", "Iframe Restrict Access: off")
	want(t, deployment{csp: ptr("default-src 'self'; frame-ancestors 'self' https://shop.example.test")}.run(t), "framing", doctor.Fail,
		"does not allow pages of "+website)
	want(t, deployment{csp: ptr("")}.run(t), "framing", doctor.Warn, "any site can frame Rocket.Chat")
	want(t, deployment{csp: ptr("frame-ancestors https://*.example.test")}.run(t), "framing", doctor.OK)
}

func TestReach(t *testing.T) {
	want(t, deployment{doctor: func(d *doctor.Doctor) {
		u := *d.Target.PublicURL
		u.Host = "sso.example.invalid"
		d.Target.PublicURL = &u
		d.Target.LookupHost = func(context.Context, string) ([]string, error) { return nil, errors.New("no such host") }
	}}.run(t), "reach", doctor.Fail, "sso.example.invalid does not resolve", "DNS record")

	tlsSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsSrv.Config.ErrorLog = stdlog.New(io.Discard, "", 0)
	tlsSrv.StartTLS() // a certificate nobody trusts
	t.Cleanup(tlsSrv.Close)
	want(t, deployment{cfg: func(_ *rcemu.Server, c *config.Config) { c.PublicURL = tlsSrv.URL }}.run(t), "reach", doctor.Fail,
		"TLS to 127.0.0.1:", "certificate")

	noCORS := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(noCORS.Close)
	want(t, deployment{cfg: func(_ *rcemu.Server, c *config.Config) { c.PublicURL = noCORS.URL }}.run(t), "reach", doctor.Fail,
		"without Access-Control-Allow-Origin", "pass OPTIONS requests")

	want(t, deployment{noRcsso: true}.run(t), "reach", doctor.Fail, "cannot reach the API URL")
	want(t, deployment{doctor: func(d *doctor.Doctor) { d.Target.RocketChatOrigin = "https://chat.example.test" }}.run(t), "reach", doctor.Fail, "mixed content")
}

// Every permission the mode needs, held through any role.
func TestPermissions(t *testing.T) {
	svc := func(roles ...string) func(*rcemu.Server, *config.Config) {
		return func(e *rcemu.Server, c *config.Config) {
			id, err := e.AddUser(rcemu.NewUser{Username: "rcsso-svc", Roles: roles, PAT: "svc-pat"})
			if err != nil {
				t.Fatal(err)
			}
			c.RocketChat.AdminUserID, c.RocketChat.AdminToken = id, "svc-pat"
		}
	}
	rep := deployment{cfg: svc("bot")}.run(t)
	want(t, rep, "permissions", doctor.Fail, `"rcsso-svc" (roles: bot) lacks 4 permission(s)`, "create-user", "user-generate-access-token", "held by admin", "rcsso setup")
	want(t, rep, "rate-limit", doctor.OK, "bypasses")

	rep = deployment{cfg: func(e *rcemu.Server, c *config.Config) {
		role, _ := e.AddRole("chat-bridge", "create-user", "view-full-other-user-info", "edit-other-user-info", "user-generate-access-token")
		svc("user", role)(e, c)
	}}.run(t)
	want(t, rep, "permissions", doctor.Fail, "lacks 1 permission(s)", "api-bypass-rate-limit")
	want(t, rep, "rate-limit", doctor.Fail, "lacks api-bypass-rate-limit", "10 calls per 1m0s")

	want(t, deployment{cfg: func(_ *rcemu.Server, c *config.Config) { c.RocketChat.AdminToken = "wrong" }}.run(t), "permissions", doctor.Fail,
		"refused the service account credentials")
	// Webhooks on: the deprovisioning permissions join the list.
	want(t, deployment{cfg: func(e *rcemu.Server, c *config.Config) {
		role, _ := e.AddRole("chat-bridge", "create-user", "view-full-other-user-info", "edit-other-user-info", "user-generate-access-token", "api-bypass-rate-limit")
		svc("user", role)(e, c)
		c.Webhooks.Secret = strings.Repeat("w", 32)
	}}.run(t), "permissions", doctor.Fail, "delete-user", "edit-other-user-active-status")
}

func TestCreateTokenAndRateLimiterSettings(t *testing.T) {
	want(t, deployment{emu: func(ec *rcemu.Config) { ec.CreateTokensSecret = "other" }}.run(t), "create-token", doctor.Fail,
		"users.createToken was refused", "CREATE_TOKENS_FOR_USERS_SECRET must equal rocketchat.create_tokens_secret")
	want(t, deployment{emu: func(ec *rcemu.Config) { ec.Profile, ec.CreateTokensForUsers = "7.x", false }}.run(t), "create-token", doctor.Fail,
		"CREATE_TOKENS_FOR_USERS=true")
	// The admin PAT reads the limiter settings (view-privileged-setting).
	want(t, deployment{emu: func(ec *rcemu.Config) { ec.Settings["API_Enable_Rate_Limiter"] = false }}.run(t), "rate-limit", doctor.OK, "rate limiter is off")
}

func TestOAuthMode(t *testing.T) {
	oauthCfg := func(_ *rcemu.Server, c *config.Config) {
		c.Minting.Mode = "oauth"
		c.Minting.Options = map[string]any{"oauth": map[string]any{"service_name": "rcsso", "client_id": "rocketchat", "client_secret": strings.Repeat("c", 32)}}
	}
	rep := deployment{emu: func(ec *rcemu.Config) {
		ec.Profile = "9.0"
		ec.OAuthServices = []rcemu.OAuthService{{Name: "rcsso"}}
	}, cfg: oauthCfg}.run(t)
	want(t, rep, "custom-oauth", doctor.Fail, "Premium", "create-token")
	want(t, rep, "rate-limit", doctor.Warn, "POST /api/v1/login")

	rep = deployment{emu: func(ec *rcemu.Config) {
		ec.Profile, ec.OAuthEnterprise, ec.TwoFactor = "9.0", true, true
		ec.OAuthServices = []rcemu.OAuthService{{Name: "rcsso"}}
	}, cfg: oauthCfg}.run(t)
	want(t, rep, "custom-oauth", doctor.OK, `Custom OAuth service "rcsso"`)
	want(t, rep, "two-factor", doctor.Fail, "e-mailed code at each OAuth login", "Two Factor Authentication")
}

func TestTwoFactor(t *testing.T) {
	twoFA := func(ec *rcemu.Config) { ec.TwoFactor = true }
	want(t, deployment{emu: twoFA}.run(t), "two-factor", doctor.OK, "resume tokens")
	want(t, deployment{emu: twoFA, cfg: func(e *rcemu.Server, c *config.Config) {
		c.RocketChat.AdminUserID, c.RocketChat.AdminToken, c.RocketChat.AdminUsername, c.RocketChat.AdminPassword = "", "", "admin", "pw"
	}}.run(t), "two-factor", doctor.Warn, "logs in with a password", "Ignore Two Factor Authentication")
	want(t, deployment{emu: twoFA, cfg: func(_ *rcemu.Server, c *config.Config) { c.Minting.Mode = "password" }}.run(t),
		"two-factor", doctor.Warn, "cannot be logged in with their password")
}

func TestMongoModes(t *testing.T) {
	mongoCfg := func(mode, url string) func(*rcemu.Server, *config.Config) {
		return func(_ *rcemu.Server, c *config.Config) {
			c.Minting.Mode = mode
			c.Minting.Options = map[string]any{"mongo": map[string]any{"url": url}}
		}
	}
	rep := deployment{cfg: mongoCfg("mongo-resume", "mongodb://127.0.0.1:1/rocketchat?serverSelectionTimeoutMS=300&connectTimeoutMS=300")}.run(t)
	want(t, rep, "mongo", doctor.Fail, "does not answer", "minting.mongo.url")
	want(t, rep, "rate-limit", doctor.OK, "MongoDB")

	rep = deployment{emu: func(ec *rcemu.Config) { ec.TwoFactor = true }, cfg: mongoCfg("mongo-iframe", mongotest.Start(t))}.run(t)
	want(t, rep, "mongo", doctor.OK, "may write its users collection")
	want(t, rep, "two-factor", doctor.Warn, "iframe-token logins")
}
