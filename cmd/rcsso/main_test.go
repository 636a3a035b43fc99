package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	if stdin != "" {
		f := filepath.Join(t.TempDir(), "stdin")
		if err := os.WriteFile(f, []byte(stdin), 0o600); err != nil {
			t.Fatal(err)
		}
		in, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		old := os.Stdin
		os.Stdin = in
		t.Cleanup(func() { os.Stdin = old; in.Close() })
	}
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUsersCommand(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("RCSSO_STORE_PATH", filepath.Join(dir, "rcsso.db"))
	if code, _, stderr := runCLI(t, "s3cret-password\n", "users", "add", "Alice", "--name", "Alice A", "--email", "alice@example.test", "--password-stdin"); code != 0 {
		t.Fatalf("add: %d %s", code, stderr)
	}
	code, out, _ := runCLI(t, "", "users", "add", "bob", "--generate-password")
	if code != 0 || !strings.Contains(out, "password: ") {
		t.Fatalf("add --generate-password: %d %q", code, out)
	}
	if code, _, stderr := runCLI(t, "", "users", "add", "carol"); code == 0 || !strings.Contains(stderr, "--password-stdin") {
		t.Fatalf("add without a password source must refuse: %d %q", code, stderr)
	}
	if code, _, stderr := runCLI(t, "another-password\n", "users", "add", "alice", "--password-stdin"); code == 0 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("duplicate add: %d %q", code, stderr)
	}
	code, out, _ = runCLI(t, "", "users", "list")
	if code != 0 || !strings.Contains(out, "alice") || !strings.Contains(out, "alice@example.test") || !strings.Contains(out, "bob") || strings.Contains(out, "s3cret") {
		t.Fatalf("list: %q", out)
	}
	if code, _, _ := runCLI(t, "", "users", "remove", "bob"); code != 0 {
		t.Fatal("remove failed")
	}
	if code, _, stderr := runCLI(t, "", "users", "remove", "bob"); code == 0 || !strings.Contains(stderr, "no local account") {
		t.Fatalf("second remove: %q", stderr)
	}
}

func TestServeCheckNamesBrokenKeys(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "rcsso.yaml")
	if err := os.WriteFile(cfg, []byte("rocketchat:\n  url: ftp://chat\nstore:\n  type: oracle\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "", "serve", "--config", cfg, "--check")
	if code == 0 || !strings.Contains(stderr, "rocketchat.url") || !strings.Contains(stderr, "store.type") {
		t.Fatalf("serve --check: %d %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "", "nonsense")
	if code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Fatalf("unknown command: %d %q", code, stderr)
	}
	for _, c := range []string{"serve", "demo", "emulate", "users", "store"} {
		if code, _, stderr := runCLI(t, "", c, "--help"); code != 0 || !strings.Contains(stderr, "Usage: rcsso "+c) {
			t.Errorf("%s --help: %d %q", c, code, stderr)
		}
	}
}

// Flags may follow the subcommand and its arguments; --help never touches
// state (it used to create ./rcsso.db, or look up a user named "--help").
func TestUsersFlagsAnywhereAndHelpTouchesNothing(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	cfgPath := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfgPath, []byte("store:\n  path: "+filepath.Join(dir, "mine.db")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"users", "list", "--help"}, {"users", "remove", "--help"}, {"users", "add", "--help"}, {"users", "--help"}} {
		code, _, stderr := runCLI(t, "", args...)
		if code != 0 || !strings.Contains(stderr, "Usage: rcsso users") {
			t.Errorf("%v: %d %q", args, code, stderr)
		}
		if strings.Contains(stderr, "no local account") {
			t.Errorf("%v looked up a user named --help", args)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "rcsso.db")); !os.IsNotExist(err) {
		t.Fatalf("--help created ./rcsso.db (%v)", err)
	}
	if code, _, stderr := runCLI(t, "", "users", "add", "bob", "--config", cfgPath, "--generate-password", "--email", "bob@example.test"); code != 0 {
		t.Fatalf("users add bob --config f …: %d %s", code, stderr)
	}
	code, out, _ := runCLI(t, "", "users", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "bob@example.test") {
		t.Fatalf("users list --config f: %d %q", code, out)
	}
	if code, _, _ := runCLI(t, "", "users", "--config", cfgPath, "remove", "bob"); code != 0 {
		t.Fatal("users --config f remove bob failed")
	}
	if _, err := os.Stat(filepath.Join(dir, "rcsso.db")); !os.IsNotExist(err) {
		t.Fatalf("a default ./rcsso.db was created although --config named another store (%v)", err)
	}
}
