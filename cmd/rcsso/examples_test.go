package main

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rcsso/rcsso/internal/app"
	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity/claims"
	"github.com/rcsso/rcsso/internal/identity/header"
	"github.com/rcsso/rcsso/internal/identity/jwt"
	"github.com/rcsso/rcsso/internal/identity/oidc"
	"github.com/rcsso/rcsso/internal/identity/whoami"
)

// repoRoot is the repository root, seen from this package's directory.
const repoRoot = "../.."

// shippedSecrets writes the secret files the shipped configurations name
// (by file name) into a new directory and returns it.
func shippedSecrets(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, value := range map[string]string{
		"rocketchat-admin-token": "pat-0123456789abcdef",
		"create-tokens-secret":   "create-tokens-secret-0123456789",
		"diagnostics-token":      "diagnostics-token-0123456789abcdef0123",
		"encryption-key":         "q6o2zQvVXoaE0wV1r9yq3j9o1sN2fS7xk4A5b6C7d8E=",
		"postgres-url":           "postgres://rcsso:secret@postgres:5432/rcsso?sslmode=verify-full",
		"webhook-secret":         "webhook-secret-0123456789abcdef0123456789",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestShippedConfigurations runs `rcsso serve --check` on every
// configuration the repository ships, so that none goes stale: the
// annotated rcsso.example.yaml, the compose example's and the Kubernetes
// ConfigMap's. Secret paths are pointed at files the test writes.
func TestShippedConfigurations(t *testing.T) {
	for k := range envKeys() {
		t.Setenv(k, "") // a developer's RCSSO_* must not change the outcome
		os.Unsetenv(k)
	}
	secrets := shippedSecrets(t) + "/"
	read := func(path string) string {
		b, err := os.ReadFile(filepath.Join(repoRoot, path))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	configMap := func(path string) string {
		var cm struct {
			Data map[string]string `yaml:"data"`
		}
		if err := yaml.Unmarshal([]byte(read(path)), &cm); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return cm.Data["rcsso.yaml"]
	}
	for _, tc := range []struct {
		name, text string
		secretDir  string // the directory the configuration expects secrets in
		env        map[string]string
	}{
		{name: "rcsso.example.yaml", text: read("rcsso.example.yaml"), secretDir: "/etc/rcsso/credentials/"},
		{name: "deploy/compose/rcsso.yaml", text: read("deploy/compose/rcsso.yaml"), env: map[string]string{
			"RCSSO_ROCKETCHAT_ADMIN_USERNAME":       "rcsso-admin",
			"RCSSO_ROCKETCHAT_ADMIN_PASSWORD":       "admin-password",
			"RCSSO_ROCKETCHAT_CREATE_TOKENS_SECRET": "create-tokens-secret",
		}},
		{name: "deploy/kubernetes/configmap.yaml", text: configMap("deploy/kubernetes/configmap.yaml"), secretDir: "/run/secrets/rcsso/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.text == "" {
				t.Fatal("no configuration found")
			}
			text := tc.text
			if tc.secretDir != "" {
				if !strings.Contains(text, tc.secretDir) {
					t.Fatalf("expected secret files under %s", tc.secretDir)
				}
				text = strings.ReplaceAll(text, tc.secretDir, secrets)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			f := filepath.Join(t.TempDir(), "rcsso.yaml")
			if err := os.WriteFile(f, []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runCLI(t, "", "serve", "--config", f, "--check")
			if code != 0 || !strings.Contains(stderr, "configuration is valid") {
				t.Fatalf("serve --check: exit %d\n%s", code, stderr)
			}
		})
	}
}

// envKeys are the RCSSO_* variables set in this process.
func envKeys() map[string]bool {
	out := map[string]bool{}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "RCSSO_") {
			out[k] = true
		}
	}
	return out
}

// TestExampleShowsEveryKey: rcsso.example.yaml names every configuration
// key (as a key, commented out or not), every store type, identity source
// and minting mode, so that a new key is documented where operators look.
func TestExampleShowsEveryKey(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "rcsso.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	example := string(b)
	keys := map[string]bool{}
	collectKeys(reflect.TypeFor[config.Config](), keys)
	for _, s := range app.Schemas() {
		collectKeys(s.Type, keys)
	}
	for _, v := range []any{header.Config{}, jwt.Config{}, whoami.Config{}, oidc.Config{}, claims.Mapping{}} {
		collectKeys(reflect.TypeOf(v), keys)
	}
	for k := range keys {
		if !regexp.MustCompile(`(?m)^[ \t]*(#[ \t]*)*(- )?` + regexp.QuoteMeta(k) + `:`).MatchString(example) {
			t.Errorf("rcsso.example.yaml does not show the key %s", k)
		}
	}
	for _, v := range []string{
		"type: sqlite", "type: postgres", "type: redis", "memory",
		"type: header", "type: local", "type: jwt", "type: whoami", "type: oidc",
		"create-token", "oauth", "mongo-resume", "mongo-iframe", "password",
	} {
		if !strings.Contains(example, v) {
			t.Errorf("rcsso.example.yaml does not mention %q", v)
		}
	}
}

// collectKeys adds the koanf key names of t's fields, and of nested
// structures' fields, to keys.
func collectKeys(t reflect.Type, keys map[string]bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for f := range t.Fields() {
		tag := f.Tag.Get("koanf")
		if tag == "" || tag == "-" || strings.HasPrefix(tag, ",") {
			continue
		}
		keys[tag] = true
		ft := f.Type
		if ft.Kind() == reflect.Slice {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Duration]() {
			collectKeys(ft, keys)
		}
	}
}
