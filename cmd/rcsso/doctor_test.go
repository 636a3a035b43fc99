package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/app"
	"github.com/rcsso/rcsso/internal/rcemu"
)

const testWebsite = "https://www.example.test"

// deploy is an emulated Rocket.Chat and an rcsso configuration file for
// it, with public_url on a reserved port where startRcsso serves rcsso.
type deploy struct {
	emu     *rcemu.Server
	emuURL  string
	calls   *atomic.Int64 // requests the emulator received
	ln      net.Listener
	pub     string
	cfgPath string
}

// newDeploy starts the emulator (ec adjusted by the test) and writes a
// configuration whose service account is the user svcID/svcToken made by
// svc (nil: the admin's PAT).
func newDeploy(t *testing.T, ec rcemu.Config, svc func(e *rcemu.Server) (string, string)) *deploy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &deploy{ln: ln, pub: "http://" + ln.Addr().String(), calls: new(atomic.Int64)}
	ec.AdminPassword, ec.AdminPAT, ec.BcryptCost, ec.CreateTokensSecret = "admin-pw", "admin-pat", bcrypt.MinCost, "s"
	if d.emu, err = rcemu.New(ec); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.calls.Add(1)
		d.emu.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	d.emuURL = srv.URL
	id, tok := d.emu.AdminID(), "admin-pat"
	if svc != nil {
		id, tok = svc(d.emu)
	}
	d.cfgPath = filepath.Join(t.TempDir(), "rcsso.yaml")
	yaml := fmt.Sprintf(`public_url: %s
rocketchat:
  url: %s
  admin_user_id: %s
  admin_token: %s
  create_tokens_secret: s
identity:
  - type: header
    user_header: X-Forwarded-User
    trusted_proxies: [192.0.2.1]
store:
  type: memory
website:
  origins: [%s]
`, d.pub, d.emuURL, id, tok, testWebsite)
	if err := os.WriteFile(d.cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// startRcsso serves rcsso (built from the configuration) at public_url.
func (d *deploy) startRcsso(t *testing.T) {
	t.Helper()
	var cf configFlags
	cf.path = d.cfgPath
	cfg, err := cf.load()
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Build(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: a.Handler}
	go func() { _ = hs.Serve(d.ln) }()
	t.Cleanup(func() { _ = hs.Close(); _ = a.Close() })
}

// goodSettings are the iframe and integration settings rcsso needs.
func goodSettings(pub string) rcemu.Config {
	ec := rcemu.Config{Settings: map[string]any{"Iframe_Integration_receive_enable": true, "Iframe_Integration_receive_origin": testWebsite,
		"Iframe_Integration_send_enable": true, "Iframe_Integration_send_target_origin": testWebsite}}
	ec.EnableIframeAuth(pub+"/login", pub+"/api/rocketchat/token", "POST")
	return ec
}

// rcsso doctor prints a line per check, exits 1 on a FAIL and 0 without;
// --json has the documented shape.
func TestDoctorCommand(t *testing.T) {
	d := newDeploy(t, rcemu.Config{Settings: map[string]any{"Accounts_iframe_enabled": false}}, nil)
	d.ln.Close() // rcsso does not run
	code, out, stderr := runCLI(t, "", "doctor", "--config", d.cfgPath)
	if code != 1 || !strings.Contains(out, "FAIL iframe-login") || !strings.Contains(out, "Accounts_iframe_enabled is off") ||
		!strings.Contains(out, "fix: Rocket.Chat → Administration → Workspace → Settings → Accounts → Iframe: switch Enabled on") ||
		!strings.Contains(out, "OK   permissions") {
		t.Fatalf("doctor: exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, _ = runCLI(t, "", "doctor", "--json", "--config", d.cfgPath)
	var rep struct {
		At      time.Time `json:"at"`
		Results []struct {
			Check, Status, Message, Fix string
		} `json:"results"`
		Summary struct{ OK, Warn, Fail int } `json:"summary"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 {
		t.Fatalf("--json: exit %d, %v:\n%s", code, err, out)
	}
	var raw map[string]any
	_ = json.Unmarshal([]byte(out), &raw)
	line := raw["results"].([]any)[0].(map[string]any)
	if rep.At.IsZero() || rep.Summary.Fail == 0 || rep.Summary.OK == 0 || len(rep.Results) != rep.Summary.OK+rep.Summary.Warn+rep.Summary.Fail ||
		line["check"] != "rocketchat" || line["status"] != "OK" || line["message"] == nil {
		t.Fatalf("--json shape: %s", out)
	}

	// Set up right, with rcsso serving: no FAIL, exit 0.
	ok := newDeploy(t, rcemu.Config{}, nil)
	ok.emu.SetSetting("Accounts_iframe_enabled", true)
	for k, v := range goodSettings(ok.pub).Settings {
		ok.emu.SetSetting(k, v)
	}
	ok.startRcsso(t)
	if code, out, stderr := runCLI(t, "", "doctor", "--config", ok.cfgPath); code != 0 || strings.Contains(out, "\nFAIL ") {
		t.Fatalf("healthy deployment: exit %d\n%s\n%s", code, out, stderr)
	}
}

// --help of doctor and setup prints the usage and asks Rocket.Chat
// nothing.
func TestDoctorSetupHelpTouchesNothing(t *testing.T) {
	d := newDeploy(t, rcemu.Config{}, nil)
	before := d.calls.Load()
	for _, args := range [][]string{{"doctor", "--help"}, {"setup", "--help"}, {"setup", "--config", d.cfgPath, "--apply", "--help"}, {"doctor", "--config", d.cfgPath, "-h"}} {
		if code, _, stderr := runCLI(t, "", args...); code != 0 || !strings.Contains(stderr, "Usage: rcsso "+args[0]) {
			t.Errorf("%v: exit %d %q", args, code, stderr)
		}
	}
	if n := d.calls.Load(); n != before {
		t.Fatalf("--help made %d Rocket.Chat requests", n-before)
	}
	if code, _, _ := runCLI(t, "", "doctor", "extra"); code != 2 && code != 1 {
		t.Fatalf("doctor with an argument: exit %d", code)
	}
}

// rcsso setup prints a diff and changes nothing without --apply; with
// --apply it writes what doctor found missing, and doctor is then clean;
// --disable-iframe --apply switches iframe login off.
func TestSetupCommand(t *testing.T) {
	var role string
	d := newDeploy(t, rcemu.Config{Settings: map[string]any{"Accounts_iframe_enabled": false, "Iframe_Integration_receive_enable": false,
		"Iframe_Integration_receive_origin": "https://shop.example.test, *"}}, func(e *rcemu.Server) (string, string) {
		var err error
		if role, err = e.AddRole("chat-bridge", "view-full-other-user-info"); err != nil {
			t.Fatal(err)
		}
		id, err := e.AddUser(rcemu.NewUser{Username: "rcsso-svc", Roles: []string{"user", role}, PAT: "svc-pat"})
		if err != nil {
			t.Fatal(err)
		}
		return id, "svc-pat"
	})
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte("admin-pat\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := []string{"--admin-user-id", d.emu.AdminID(), "--admin-token-file", tokenFile}
	state := func() string {
		var b bytes.Buffer
		for _, k := range []string{"Accounts_iframe_enabled", "Accounts_iframe_url", "Accounts_Iframe_api_url", "Iframe_Integration_receive_enable",
			"Iframe_Integration_receive_origin", "Iframe_Integration_send_enable", "Iframe_Integration_send_target_origin"} {
			fmt.Fprintf(&b, "%s=%v\n", k, d.emu.Setting(k))
		}
		req, _ := http.NewRequest("GET", d.emuURL+"/api/v1/permissions.listAll", nil)
		req.Header.Set("X-User-Id", d.emu.AdminID())
		req.Header.Set("X-Auth-Token", "admin-pat")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		_, _ = b.ReadFrom(res.Body)
		return b.String()
	}
	before := state()
	code, out, stderr := runCLI(t, "", append([]string{"setup", "--config", d.cfgPath}, admin...)...)
	if code != 0 {
		t.Fatalf("setup: exit %d\n%s\n%s", code, out, stderr)
	}
	for _, want := range []string{
		"setting Accounts_iframe_enabled: false → true",
		`setting Accounts_Iframe_api_url: "" → "` + d.pub + `/api/rocketchat/token"`,
		`setting Iframe_Integration_receive_origin: "https://shop.example.test, *" → "https://shop.example.test,` + testWebsite + `"`,
		"permission create-user: roles [admin] → [admin, " + role + "]",
		"granted to role chat-bridge",
		"Nothing was changed: run again with --apply",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("setup's diff lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "permission view-full-other-user-info") {
		t.Errorf("setup grants a permission the role holds:\n%s", out)
	}
	if after := state(); after != before {
		t.Fatalf("setup without --apply changed Rocket.Chat:\nbefore %s\nafter  %s", before, after)
	}

	if code, _, stderr := runCLI(t, "", append([]string{"setup", "--config", d.cfgPath, "--role", "user", "--apply"}, admin...)...); code == 0 || !strings.Contains(stderr, "every user holds that role") {
		t.Fatalf("--role user: exit %d %s", code, stderr)
	}
	if state() != before {
		t.Fatal("a refused setup changed Rocket.Chat")
	}

	code, out, stderr = runCLI(t, "", append([]string{"setup", "--apply", "--config", d.cfgPath}, admin...)...)
	if code != 0 || !strings.Contains(out, "Applied") {
		t.Fatalf("setup --apply: exit %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(stderr, `"event":"admin","outcome":"ok"`) || !strings.Contains(stderr, `"actor":"setup --apply"`) ||
		!strings.Contains(stderr, "setting Accounts_iframe_enabled") {
		t.Errorf("setup --apply's audit line (names of what changed): %s", stderr)
	}
	d.startRcsso(t) // starts now: the service account holds what it needs
	code, out, _ = runCLI(t, "", "doctor", "--config", d.cfgPath)
	if code != 0 || strings.Contains(out, "\nFAIL ") {
		t.Fatalf("doctor after setup --apply: exit %d\n%s", code, out)
	}
	for _, c := range []string{"OK   iframe-login", "OK   permissions", "OK   create-token", "OK   rate-limit"} {
		if !strings.Contains(out, c) {
			t.Errorf("doctor after setup lacks %q:\n%s", c, out)
		}
	}
	if code, out, _ := runCLI(t, "", append([]string{"setup", "--config", d.cfgPath}, admin...)...); code != 0 || !strings.Contains(out, "already has everything") {
		t.Fatalf("second setup: %d\n%s", code, out)
	}

	// The way back: iframe login off, with the administrator's password
	// on standard input.
	code, out, stderr = runCLI(t, "admin-pw\n", "setup", "--config", d.cfgPath, "--disable-iframe", "--apply", "--admin-username", "admin", "--secret-stdin")
	if code != 0 || !strings.Contains(out, "setting Accounts_iframe_enabled: true → false") || d.emu.Setting("Accounts_iframe_enabled") != false {
		t.Fatalf("--disable-iframe --apply: exit %d, setting %v\n%s\n%s", code, d.emu.Setting("Accounts_iframe_enabled"), out, stderr)
	}
	if strings.Contains(out+stderr, "admin-pw") {
		t.Fatal("the password was printed")
	}
}

// rcsso serve logs each FAIL of the deployment checks at start-up: iframe
// login switched off in Rocket.Chat used to start without a word.
func TestServeLogsDoctorFails(t *testing.T) {
	d := newDeploy(t, rcemu.Config{Settings: map[string]any{"Accounts_iframe_enabled": false}}, nil)
	d.ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var errb syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve", "--config", d.cfgPath, "--listen", "127.0.0.1:0"}, new(bytes.Buffer), &errb)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(errb.String(), "doctor: deployment checked") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling the log with a deadline
	}
	cancel()
	<-done
	log := errb.String()
	if !strings.Contains(log, "level=ERROR msg=\"doctor: FAIL: Accounts_iframe_enabled is off") || !strings.Contains(log, "check=iframe-login") ||
		!strings.Contains(log, "switch Enabled on") {
		t.Fatalf("start-up log:\n%s", log)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
