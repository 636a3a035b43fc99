package app

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/rcemu"
)

// serviceAccount adds a Rocket.Chat user with roles and a personal access
// token and points cfg at it instead of the admin.
func serviceAccount(t *testing.T, emu *rcemu.Server, cfg *config.Config, roles ...string) string {
	t.Helper()
	id, err := emu.AddUser(rcemu.NewUser{Username: "rcsso-svc", Name: "rcsso", Roles: roles, PAT: "svc-pat"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.RocketChat.AdminUserID, cfg.RocketChat.AdminToken = id, "svc-pat"
	return id
}

// A service account with only the bot role cannot create users: rcsso
// refuses to start and names every missing permission with where to grant
// it, instead of starting and failing every first visit with 502 "Adding
// user is not allowed" (issue 9, item 5).
func TestBotRoleAloneIsRefused(t *testing.T) {
	for _, profile := range []string{"7.x", "8.x", "8.7", "9.0"} {
		t.Run(profile, func(t *testing.T) {
			emu, cfg := emulated(t, rcemu.Config{Profile: profile, CreateTokensSecret: "s", CreateTokensForUsers: true})
			serviceAccount(t, emu, &cfg, "bot")
			a, err := Build(t.Context(), cfg, slog.New(slog.DiscardHandler))
			if err == nil {
				w := visit(a, "nina", "nina@example.test")
				a.Close()
				t.Fatalf("started with a bot-only service account; a first visit then answers %d %s", w.Code, strings.TrimSpace(w.Body.String()))
			}
			if !errors.Is(err, ErrIncapable) {
				t.Fatalf("error %v is not ErrIncapable", err)
			}
			msg := err.Error()
			for _, want := range []string{"create-user", "view-full-other-user-info", "edit-other-user-info", "user-generate-access-token",
				"Administration → Workspace → Permissions", "roles: bot", "held by admin"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error lacks %q:\n%s", want, msg)
				}
			}
			if strings.Contains(msg, "api-bypass-rate-limit") {
				t.Errorf("bot holds api-bypass-rate-limit, yet the error names it:\n%s", msg)
			}
		})
	}
}

// A custom role that holds the permissions is as good as admin: rcsso
// starts and the first visit creates the chat account.
func TestCustomRoleWithPermissionsPasses(t *testing.T) {
	emu, cfg := emulated(t, rcemu.Config{Profile: "8.7", CreateTokensSecret: "s"})
	role, err := emu.AddRole("chat-bridge", "create-user", "view-full-other-user-info", "edit-other-user-info",
		"user-generate-access-token", "api-bypass-rate-limit")
	if err != nil {
		t.Fatal(err)
	}
	serviceAccount(t, emu, &cfg, "user", role)
	a := build(t, cfg)
	if w := visit(a, "olga", "olga@example.test"); w.Code != 200 || !strings.Contains(w.Body.String(), "loginToken") {
		t.Fatalf("first visit: %d %s", w.Code, w.Body)
	}
	if _, ok := emu.UserByUsername("olga"); !ok {
		t.Fatal("no chat account was created")
	}
}

// One missing permission is named alone; the permissions the mode needs
// follow the configuration (webhooks on → deprovisioning permissions) and
// the mode (password needs no user-generate-access-token).
func TestMissingPermissionsPerModeAndConfig(t *testing.T) {
	emu, cfg := emulated(t, rcemu.Config{Profile: "9.0", CreateTokensSecret: "s"})
	role, _ := emu.AddRole("chat-bridge", "create-user", "view-full-other-user-info", "edit-other-user-info", "api-bypass-rate-limit")
	serviceAccount(t, emu, &cfg, "user", role)
	_, err := Build(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "lacks 1 permission(s) minting mode create-token needs: user-generate-access-token") ||
		!strings.Contains(err.Error(), "roles: user, chat-bridge") {
		t.Fatalf("error: %v", err)
	}

	cfg.Minting.Mode, cfg.RocketChat.CreateTokensSecret = "password", ""
	a := build(t, cfg)
	a.Close()

	cfg.Webhooks.Secret = strings.Repeat("w", 32)
	_, err = Build(t.Context(), cfg, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "delete-user") || !strings.Contains(err.Error(), "edit-other-user-active-status") ||
		!strings.Contains(err.Error(), "/webhooks/deprovision") {
		t.Fatalf("webhooks on, error: %v", err)
	}
	emu.SetPermissionRoles("delete-user", "admin", role)
	emu.SetPermissionRoles("edit-other-user-active-status", "admin", role)
	build(t, cfg).Close()
}
