package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/doctor"
	"github.com/rcsso/rcsso/internal/mint/mode"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
)

// rocketChat builds the Rocket.Chat REST client (rocketchat.api_url, else
// url; at most rocketchat.max_concurrent_calls at once, paced by budget
// when not nil) and the service account (a personal access token, else a
// username and password; nil without either), with the keys naming it in
// messages.
func rocketChat(cfg config.Config, log *slog.Logger, budget *rocketchat.Budget) (*rocketchat.Client, rcadmin.Auth, string, error) {
	apiBase := cfg.RocketChat.URL
	if cfg.RocketChat.APIURL != "" {
		apiBase = cfg.RocketChat.APIURL
	}
	rc, err := rocketchat.New(rocketchat.Options{BaseURL: apiBase, Timeout: cfg.RocketChat.Timeout, Logger: log, UserAgent: "rcsso",
		MaxConcurrent: cfg.RocketChat.MaxConcurrentCalls, Budget: budget})
	if err != nil {
		return nil, nil, "", fmt.Errorf("rocketchat.url: %w", err)
	}
	var admin rcadmin.Auth
	adminKey := "rocketchat.admin_user_id/admin_token"
	switch {
	case cfg.RocketChat.AdminToken != "":
		admin = rcadmin.PAT{UserID: cfg.RocketChat.AdminUserID, AuthToken: cfg.RocketChat.AdminToken}
	case cfg.RocketChat.AdminPassword != "":
		admin = &rcadmin.Password{RC: rc, Username: cfg.RocketChat.AdminUsername, Password: cfg.RocketChat.AdminPassword}
		adminKey = "rocketchat.admin_username/admin_password"
	}
	return rc, admin, adminKey, nil
}

// newDoctor is the deployment's checks: doctor.Standard and, when the
// minting mode has some (mode.Checker), the mode's.
func newDoctor(cfg config.Config, mc mode.Config, d mode.Deps) *doctor.Doctor {
	rcURL, _ := url.Parse(cfg.RocketChat.URL)
	var origins []string
	for _, o := range cfg.Website.Origins {
		if u, err := url.Parse(o); err == nil {
			origins = append(origins, config.Origin(u))
		}
	}
	checks := doctor.Standard()
	if c, ok := mc.(mode.Checker); ok {
		checks = append(checks, c.Checks(d)...)
	}
	var need []doctor.Permission
	if n, ok := mc.(mode.Needer); ok {
		need = n.Need(d)
	}
	return &doctor.Doctor{Need: need, Target: doctor.Target{
		RC: d.RC, Admin: d.Admin, AdminKey: d.AdminKey,
		AdminPassword:    cfg.RocketChat.AdminToken == "" && cfg.RocketChat.AdminPassword != "",
		PublicURL:        d.PublicURL,
		RocketChatOrigin: config.Origin(rcURL),
		WebsiteOrigins:   origins,
		Mode:             cfg.Minting.Mode,
	}, Checks: checks}
}

// NewDoctor returns the checks of cfg's deployment without building rcsso:
// no store is opened and no mode starts (rcsso doctor, rcsso setup). It
// asks Rocket.Chat for its version (5 s), as Build does. Errors:
// Validate's.
func NewDoctor(ctx context.Context, cfg config.Config, log *slog.Logger) (*doctor.Doctor, error) {
	if err := Validate(cfg); err != nil {
		return nil, err
	}
	rc, admin, adminKey, err := rocketChat(cfg, log, nil)
	if err != nil {
		return nil, err
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, infoErr := rc.Info(ictx)
	cancel()
	sources, _ := sourceConfigs(cfg.Identity) // checked by Validate
	mc, _ := modeConfig(cfg)                  // checked by Validate
	pub, _ := url.Parse(cfg.PublicURL)
	return newDoctor(cfg, mc, mode.Deps{RC: rc, Info: info, InfoErr: infoErr, Admin: admin, AdminKey: adminKey,
		CreateTokensSecret: cfg.RocketChat.CreateTokensSecret, RocketChatURL: cfg.RocketChat.URL, PublicURL: pub,
		Permissions: extraPermissions(cfg, sources), Logger: log}), nil
}

// LogDoctor runs the deployment's checks (at most 30 s) and logs each
// finding: FAIL at error level, WARN at warn, OK at debug, with the check's
// name and the fix. rcsso serve calls it once it listens, so that the
// reach check can reach it.
func (a *App) LogDoctor(ctx context.Context) doctor.Report {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep := a.Doctor.Run(ctx)
	for _, r := range rep.Results {
		attrs := []any{"check", r.Check}
		if r.Fix != "" {
			attrs = append(attrs, "fix", r.Fix)
		}
		switch r.Status {
		case doctor.Fail:
			a.log.Error("doctor: FAIL: "+r.Message, attrs...)
		case doctor.Warn:
			a.log.Warn("doctor: WARN: "+r.Message, attrs...)
		default:
			a.log.Debug("doctor: OK: "+r.Message, attrs...)
		}
	}
	a.log.Info("doctor: deployment checked", "ok", rep.Summary.OK, "warn", rep.Summary.Warn, "fail", rep.Summary.Fail)
	return rep
}
