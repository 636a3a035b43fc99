package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/sqlite"
)

// rcsso people list|show|reset against a store holding a person who
// logged out of the chat, and one whose creation was interrupted: an
// operator sees what rcsso holds (never a token) and resets a stuck
// person so that the next visit starts clean.
func TestPeopleCommand(t *testing.T) {
	emu, err := rcemu.New(rcemu.Config{Profile: "8.x", AdminPassword: "pw", AdminPAT: "pat", CreateTokensSecret: "s", BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	rc := httptest.NewServer(emu.Handler())
	t.Cleanup(rc.Close)
	dir := t.TempDir()
	db := filepath.Join(dir, "rcsso.db")
	cfgPath := filepath.Join(dir, "rcsso.yaml")
	cfg := "rocketchat:\n  url: " + rc.URL + "\n  admin_user_id: " + emu.AdminID() + "\n  admin_token: pat\n  create_tokens_secret: s\n" +
		"store:\n  path: " + db + "\n  encryption_key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	mustLink := func(subject string, f func(*store.Link)) {
		if _, err := st.UpdateLink(t.Context(), subject, func(l *store.Link) error { f(l); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	mustLink("local:alice", func(l *store.Link) {
		l.UserID, l.Username, l.ChatLoggedOutAt, l.LastMintAt = "UALICE00000000001", "alice", now.Add(-time.Minute), now.Add(-time.Hour)
		l.Rooms = store.RoomsState{UserID: l.UserID, Added: []string{"c:GENERAL:sales"}, SyncedAt: now.Add(-time.Minute)}
	})
	mustLink("header:bob", func(l *store.Link) { l.CreatingUsername, l.CreatingAt = "bob", now.Add(-2*time.Minute) })
	if err := st.PutToken(t.Context(), store.Token{Subject: "local:alice", UserID: "UALICE00000000001", Ciphertext: []byte("sealed-secret"), MintedAt: now.Add(-time.Hour), ValidatedAt: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	code, out, stderr := runCLI(t, "", "people", "list", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "local:alice") || !strings.Contains(out, "UALICE00000000001") || !strings.Contains(out, "logged-out-of-chat") ||
		!strings.Contains(out, "header:bob") || !strings.Contains(out, "creation-unfinished") || strings.Contains(out, "sealed-secret") {
		t.Fatalf("people list: %d %q %q", code, out, stderr)
	}
	code, out, _ = runCLI(t, "", "people", "show", "local:alice", "--json", "--config", cfgPath)
	var p map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p["rocketchat_username"] != "alice" || p["chat_logged_out_at"] == nil || p["token_minted_at"] == nil ||
		fmt.Sprint(p["rooms_added"]) != "[c:GENERAL:sales]" {
		t.Fatalf("people show --json: %d %q", code, out)
	}
	if code, out, _ := runCLI(t, "", "people", "show", "local:alice", "--config", cfgPath); code != 0 || !strings.Contains(out, "rooms rcsso added:") || !strings.Contains(out, "c:GENERAL:sales") {
		t.Fatalf("people show: %d %q", code, out)
	}
	if code, _, stderr := runCLI(t, "", "people", "show", "local:nobody", "--config", cfgPath); code != 1 || !strings.Contains(stderr, "knows no person") {
		t.Fatalf("show of an unknown subject: %d %q", code, stderr)
	}
	code, out, stderr = runCLI(t, "", "people", "reset", "local:alice", "--config", cfgPath)
	if code != 0 || !strings.Contains(out, "reset local:alice") {
		t.Fatalf("people reset: %d %q %q", code, out, stderr)
	}
	// The audit log (standard output by default) gets the admin action on
	// the command's standard error, keeping its output clean.
	if !strings.Contains(stderr, `"event":"admin","outcome":"ok","subject":"local:alice"`) || !strings.Contains(stderr, `"actor":"people reset"`) ||
		strings.Contains(out, `"event"`) {
		t.Fatalf("people reset's audit line: stdout %q, stderr %q", out, stderr)
	}
	code, out, _ = runCLI(t, "", "people", "show", "local:alice", "--json", "--config", cfgPath)
	p = nil
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p["chat_logged_out_at"] != nil || p["token_minted_at"] != nil || p["last_mint_at"] != nil || p["rocketchat_user_id"] != "UALICE00000000001" {
		t.Fatalf("after reset: %q", out)
	}
	if code, _, _ := runCLI(t, "", "people", "reset", "header:bob", "--unlink", "--config", cfgPath); code != 0 {
		t.Fatal("reset --unlink failed")
	}
	code, out, _ = runCLI(t, "", "people", "show", "header:bob", "--json", "--config", cfgPath)
	p = nil
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p["creating_username"] != nil {
		t.Fatalf("after reset --unlink: %q", out)
	}
	for _, args := range [][]string{{"people", "reset", "--help"}, {"people", "list", "--help"}} {
		if code, _, stderr := runCLI(t, "", args...); code != 0 || !strings.Contains(stderr, "Usage: rcsso people") {
			t.Errorf("%v: %d %q", args, code, stderr)
		}
	}
}
