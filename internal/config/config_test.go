package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadLayers(t *testing.T) {
	tokenFile := writeFile(t, "token", "pat-from-file\n")
	path := writeFile(t, "rcsso.yaml", `
listen: 127.0.0.1:9000
public_url: https://sso.example.com
rocketchat:
  url: https://chat.example.com
  admin_user_id: adminid
  admin_token_file: `+tokenFile+`
  timeout: 5s
identity:
  - type: header
    user_header: X-Forwarded-User
    trusted_proxies: [10.0.0.0/8]
  - type: local
store:
  type: memory
`)
	env := []string{"RCSSO_LISTEN=127.0.0.1:9100", "RCSSO_ROCKETCHAT_CREATE_TOKENS_SECRET=s3cret", "HOME=/root"}
	cfg, err := Load(path, env, map[string]any{"listen": "127.0.0.1:9200"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if cfg.Listen != "127.0.0.1:9200" {
		t.Errorf("flag should win over env and file: listen = %q", cfg.Listen)
	}
	if cfg.RocketChat.CreateTokensSecret != "s3cret" {
		t.Errorf("env not applied: %q", cfg.RocketChat.CreateTokensSecret)
	}
	if cfg.RocketChat.AdminToken != "pat-from-file" {
		t.Errorf("admin_token_file not read: %q", cfg.RocketChat.AdminToken)
	}
	if cfg.RocketChat.Timeout != 5*time.Second {
		t.Errorf("timeout = %v", cfg.RocketChat.Timeout)
	}
	if len(cfg.Identity) != 2 || fmt.Sprint(cfg.Identity[0].Options["trusted_proxies"]) != "[10.0.0.0/8]" {
		t.Errorf("identity = %+v", cfg.Identity)
	}
	if cfg.Minting.Mode != "create-token" {
		t.Errorf("default minting mode lost: %q", cfg.Minting.Mode)
	}
}

// No message carries a library's wording (mapstructure's "has invalid
// keys", strconv's "ParseBool").
func TestNoRawLibraryErrors(t *testing.T) {
	for _, y := range []string{"rocketchat:\n  urll: x\n", "session:\n  storage_access_headers: maybe\n", "session:\n  ttl: [1]\n", "listen: {a: b}\n"} {
		_, err := Load(writeFile(t, "c.yaml", y), nil, nil)
		if err == nil {
			t.Fatalf("%q accepted", y)
		}
		for _, raw := range []string{"has invalid keys", "strconv.", "ParseBool", "''", "decoding failed", "expected type"} {
			if strings.Contains(err.Error(), raw) {
				t.Errorf("%q: message %q carries library wording %q", y, err, raw)
			}
		}
	}
}

// public_url is normalised: a trailing slash would make the logged API
// URL "…//api/rocketchat/token", the value operators copy into Rocket.Chat.
func TestPublicURLNormalised(t *testing.T) {
	cfg, err := Load(writeFile(t, "c.yaml", "public_url: https://sso.example.com/\n"), nil, nil)
	if err != nil || cfg.PublicURL != "https://sso.example.com" {
		t.Fatalf("public_url = %q, %v", cfg.PublicURL, err)
	}
}

func TestEnvIdentityList(t *testing.T) {
	env := []string{`RCSSO_IDENTITY=[{"type":"header","user_header":"X-User","trusted_proxies":["127.0.0.1"]}]`,
		"RCSSO_ROCKETCHAT_ADMIN_USERNAME=a", "RCSSO_ROCKETCHAT_ADMIN_PASSWORD=b"}
	cfg, err := Load("", env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Identity) != 1 || cfg.Identity[0].Options["user_header"] != "X-User" {
		t.Fatalf("identity = %+v", cfg.Identity)
	}
}

func TestBrokenConfigNamesTheKey(t *testing.T) {
	cases := []struct {
		name, yaml string
		env        []string
		want       string
	}{
		{"unknown key", "rocketchat:\n  urll: x\n", nil, "urll"},
		{"unknown env", "", []string{"RCSSO_ROCKETCHAT_ULR=x"}, "RCSSO_ROCKETCHAT_ULR"},
		{"bad url", "rocketchat:\n  url: chat.example.com\n  admin_username: a\n  admin_password: b\n", nil, "rocketchat.url"},
		{"half a PAT", "rocketchat:\n  admin_token: t\n", nil, "admin_user_id"},
		{"bad key", "store:\n  encryption_key: short\n", []string{"RCSSO_ROCKETCHAT_ADMIN_USERNAME=a", "RCSSO_ROCKETCHAT_ADMIN_PASSWORD=b"}, "store.encryption_key"},
		{"bad duration", "rocketchat:\n  timeout: soon\n", nil, "timeout"},
		{"duration without unit (YAML number)", "session:\n  ttl: 12\n", nil, "config: session.ttl: 12 has no unit: write it as a duration such as 10s"},
		{"duration without unit (environment)", "", []string{"RCSSO_ROCKETCHAT_TIMEOUT=10"}, "config: rocketchat.timeout: \"10\" has no unit"},
		{"bad boolean", "session:\n  storage_access_headers: maybe\n", nil, "config: session.storage_access_headers: \"maybe\" is not true or false"},
		{"bad boolean (environment)", "", []string{"RCSSO_SESSION_STORAGE_ACCESS_HEADERS=maybe"}, "config: session.storage_access_headers: \"maybe\" is not true or false"},
		{"not a mapping", "- listen: x\n", nil, "must be a YAML mapping of keys at the top level"},
		{"unknown nested key", "rocketchat:\n  urll: x\n", nil, "config: rocketchat.urll: unknown key"},
		{"unknown top-level key", "sesion: {}\n", nil, "config: sesion: unknown key"},
		{"unknown diagnostics key", "diagnostics:\n  tokn: x\n", nil, "tokn"},
		{"short diagnostics token", "diagnostics:\n  token: hunter2\n", []string{"RCSSO_ROCKETCHAT_ADMIN_USERNAME=a", "RCSSO_ROCKETCHAT_ADMIN_PASSWORD=b"}, "diagnostics.token"},
		{"diagnostics token and file", "diagnostics:\n  token: " + strings.Repeat("x", 32) + "\n  token_file: /nonexistent\n", nil, "diagnostics.token"},
		{"missing diagnostics token file", "diagnostics:\n  token_file: /nonexistent/token\n", nil, "diagnostics.token_file"},
		{"samesite none over http", "session:\n  same_site: none\n", []string{"RCSSO_ROCKETCHAT_ADMIN_USERNAME=a", "RCSSO_ROCKETCHAT_ADMIN_PASSWORD=b"}, "session.same_site"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := ""
			if c.yaml != "" {
				path = writeFile(t, "c.yaml", c.yaml)
			}
			cfg, err := Load(path, c.env, nil)
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil {
				t.Fatal("broken configuration accepted")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not name %q", err, c.want)
			}
		})
	}
}

func TestSecretFileAndValueBoth(t *testing.T) {
	p := writeFile(t, "pw", "x\n")
	path := writeFile(t, "c.yaml", "rocketchat:\n  admin_password: y\n  admin_password_file: "+p+"\n")
	if _, err := Load(path, nil, nil); err == nil || !strings.Contains(err.Error(), "rocketchat.admin_password") {
		t.Fatalf("want an error naming rocketchat.admin_password, got %v", err)
	}
}

func TestOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://Chat.Example.com:443/x": "https://chat.example.com",
		"http://127.0.0.1:3000":          "http://127.0.0.1:3000",
		"http://[::1]:80/":               "http://[::1]",
	} {
		u, err := ParseOrigin(in, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := Origin(u); got != want {
			t.Errorf("Origin(%q) = %q, want %q", in, got, want)
		}
	}
}

// The diagnostics operator credential comes from diagnostics.token_file
// (trailing newline dropped) or RCSSO_DIAGNOSTICS_TOKEN.
func TestDiagnosticsToken(t *testing.T) {
	tok := strings.Repeat("k", 40)
	path := writeFile(t, "c.yaml", "diagnostics:\n  token_file: "+writeFile(t, "tok", tok+"\n")+"\n")
	env := []string{"RCSSO_ROCKETCHAT_ADMIN_USERNAME=a", "RCSSO_ROCKETCHAT_ADMIN_PASSWORD=b"}
	cfg, err := Load(path, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil || cfg.Diagnostics.Token != tok {
		t.Fatalf("token %q, %v", cfg.Diagnostics.Token, err)
	}
	cfg, err = Load("", append(env, "RCSSO_DIAGNOSTICS_TOKEN="+tok), nil)
	if err != nil || cfg.Diagnostics.Token != tok {
		t.Fatalf("from the environment: %q, %v", cfg.Diagnostics.Token, err)
	}
}

// RCSSO_TEST_* are the test suite's (scripts/test.sh exports
// RCSSO_TEST_PG_BIN, …): every rcsso command run by the tests inherits
// them, and the strict check of RCSSO_* variables must not refuse them.
func TestTestSuiteVariablesAreNotKeys(t *testing.T) {
	if _, err := Load("", []string{"RCSSO_TEST_PG_BIN=/usr/lib/postgresql/15/bin", "RCSSO_TEST_SLAPD=/usr/sbin/slapd"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Load("", []string{"RCSSO_TESTING=1"}, nil); err == nil {
		t.Fatal("RCSSO_TESTING is not a key and not the test suite's")
	}
}
