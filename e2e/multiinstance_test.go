package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/testing/pgtest"
	"github.com/rcsso/rcsso/internal/testing/redistest"
)

// Several rcsso instances on one shared store, as a large site runs them
// behind a load balancer (issue 10): three real rcsso processes on one
// PostgreSQL, and on one Redis, requests spread round-robin.
//
//   - 200 concurrent first visits of 100 new people make 100 Rocket.Chat
//     users and one token each;
//   - a logout through one instance is honoured by the others within a
//     second (they never hand out the revoked token afterwards);
//   - kill -9 of one instance in the middle of a burst leaves no duplicate
//     user, and the others keep answering.
func TestMultiInstance(t *testing.T) {
	bin := buildRcsso(t)
	for _, storeType := range []string{"postgres", "redis"} {
		t.Run(storeType, func(t *testing.T) {
			var storeYAML string
			switch storeType {
			case "postgres":
				pg := pgtest.Start(t)
				storeYAML = "  type: postgres\n  postgres:\n    url: " + pg.CreateDatabase(t) + "\n"
			case "redis":
				storeYAML = "  type: redis\n  redis:\n    url: " + redistest.Start(t) + "\n"
			}
			runMultiInstance(t, bin, storeYAML)
		})
	}
}

// buildRcsso builds the rcsso binary once for the test binary.
var buildOnce struct {
	sync.Once
	path string
	err  error
}

func buildRcsso(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rcsso-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "rcsso")
		out, err := exec.Command("go", "build", "-o", buildOnce.path, "github.com/rcsso/rcsso/cmd/rcsso").CombinedOutput()
		if err != nil {
			buildOnce.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

// instance is one rcsso process.
type instance struct {
	url string
	cmd *exec.Cmd
	log *bytes.Buffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func runMultiInstance(t *testing.T, bin, storeYAML string) {
	emu, err := rcemu.New(rcemu.Config{Profile: "8.x", AdminPassword: "pw", AdminPAT: "pat", CreateTokensSecret: "s", BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	rcSrv := httptest.NewServer(emu.Handler())
	t.Cleanup(rcSrv.Close)
	dir := t.TempDir()
	cfg := fmt.Sprintf(`public_url: http://sso.example.test
log_level: warn
rocketchat:
  url: %s
  admin_user_id: %s
  admin_token: pat
  create_tokens_secret: s
identity:
  - type: header
    user_header: X-Forwarded-User
    trusted_proxies: [127.0.0.1]
store:
%s  encryption_key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
minting:
  min_interval: 1ms
webhooks:
  secret: %s
`, rcSrv.URL, emu.AdminID(), storeYAML, webhookSecret)
	cfgPath := filepath.Join(dir, "rcsso.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func() *instance {
		addr := freeAddr(t)
		var log bytes.Buffer
		cmd := exec.Command(bin, "serve", "--config", cfgPath, "--listen", addr)
		cmd.Stdout, cmd.Stderr = &log, &log
		// rcsso refuses RCSSO_* variables it does not know, such as the
		// test servers' RCSSO_TEST_*: give it the environment without them.
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "RCSSO_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		in := &instance{url: "http://" + addr, cmd: cmd, log: &log}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("rcsso at %s logged:\n%s", in.url, log.String())
			}
		})
		deadline := time.Now().Add(30 * time.Second)
		for {
			resp, err := http.Get(in.url + "/healthz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return in
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("rcsso at %s did not come up: %v\n%s", in.url, err, log.String())
			}
			time.Sleep(50 * time.Millisecond) // polling a process we started, with a deadline
		}
	}
	ins := []*instance{start(), start(), start()}
	client := &http.Client{Timeout: 60 * time.Second}
	visit := func(in *instance, person string) (string, int, error) {
		req, _ := http.NewRequest("POST", in.url+"/api/rocketchat/token", nil)
		req.Header.Set("Origin", rcSrv.URL)
		req.Header.Set("X-Forwarded-User", person)
		resp, err := client.Do(req)
		if err != nil {
			return "", 0, err
		}
		defer resp.Body.Close()
		var body map[string]string
		raw, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(raw, &body)
		return body["loginToken"], resp.StatusCode, nil
	}

	// 200 concurrent first visits of 100 new people, round-robin.
	tokens := make([]string, 200)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			tok, code, err := visit(ins[i%3], fmt.Sprintf("p%03d", i/2))
			if err != nil || code != 200 || tok == "" {
				t.Errorf("visit %d (p%03d): %d %v", i, i/2, code, err)
			}
			tokens[i] = tok
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	distinct := map[string]bool{}
	for i := 0; i < 200; i += 2 {
		if tokens[i] != tokens[i+1] {
			t.Errorf("p%03d got two different tokens from two instances", i/2)
		}
		distinct[tokens[i]] = true
	}
	if n := emu.UserCount(); n != 100 || len(distinct) != 100 {
		t.Fatalf("%d Rocket.Chat users and %d distinct tokens for 100 people, want 100 and 100", n, len(distinct))
	}
	for i := range 100 {
		if u, ok := emu.UserByUsername(fmt.Sprintf("p%03d", i)); !ok || u.ResumeTokens != 1 {
			t.Fatalf("p%03d: %+v (found %v), want one resume token", i, u, ok)
		}
	}

	// A logout through instance 0 is honoured by 1 and 2 within a second.
	old := tokens[0]
	body := `{"subject":"header:p000"}`
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	mac.Write([]byte(ts + "." + body))
	req, _ := http.NewRequest("POST", ins[0].url+"/webhooks/logout", bytes.NewBufferString(body))
	req.Header.Set("X-Rcsso-Timestamp", ts)
	req.Header.Set("X-Rcsso-Signature", "v1="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := client.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("logout webhook: %v %v", resp, err)
	}
	resp.Body.Close()
	loggedOut := time.Now()
	for _, in := range ins[1:] {
		for {
			tok, code, err := visit(in, "p000")
			if err == nil && code == 200 && tok != "" && tok != old {
				break
			}
			if time.Since(loggedOut) > time.Second {
				t.Fatalf("%s still answers %d with the revoked token %v a second after the logout (err %v)", in.url, code, tok == old, err)
			}
		}
	}
	if _, ok := emu.UserIDByResumeToken(old); ok {
		t.Fatal("Rocket.Chat still accepts the token revoked by the logout")
	}

	// kill -9 of instance 2 in the middle of a burst: no duplicate user,
	// every person is served by a surviving instance.
	var served atomic.Int64
	var kill sync.Once
	wg = sync.WaitGroup{}
	for i := range 200 {
		wg.Go(func() {
			person := fmt.Sprintf("q%03d", i/2)
			for k := range 3 {
				in := ins[(i+k)%3]
				if served.Add(1) == 60 {
					kill.Do(func() { _ = ins[2].cmd.Process.Signal(syscall.SIGKILL) })
				}
				tok, code, err := visit(in, person)
				if err == nil && code == 200 && tok != "" {
					return
				}
				if in != ins[2] {
					t.Errorf("%s answered %d %v for %s", in.url, code, err, person)
					return
				}
			}
			t.Errorf("%s was never served", person)
		})
	}
	wg.Wait()
	if n := emu.UserCount(); n != 200 {
		t.Fatalf("%d Rocket.Chat users after the second burst, want 200 (no duplicates)", n)
	}
	for i := range 100 {
		u, ok := emu.UserByUsername(fmt.Sprintf("q%03d", i))
		if !ok {
			t.Fatalf("q%03d has no Rocket.Chat user", i)
		}
		if u.ResumeTokens < 1 {
			t.Fatalf("q%03d: %+v", i, u)
		}
	}
}
