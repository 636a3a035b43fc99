package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/rcsso/rcsso/internal/app"
	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/doctor"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rocketchat"
)

// errChecksFailed is doctor's exit status 1: some check is FAIL.
var errChecksFailed = errors.New("some checks FAIL")

// runDoctor is `rcsso doctor`: every check rcsso can make of the
// deployment its configuration describes, one line each (OK, WARN, FAIL
// with what to change where), or JSON with --json; exit status 1 on any
// FAIL. It opens no store and changes nothing.
func runDoctor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("doctor", "doctor [--config FILE] [--json]", stderr)
	var cf configFlags
	cf.register(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON: {at, results:[{check, status, message, fix}], summary:{ok, warn, fail}}")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return errArgs("doctor [--config FILE] [--json]")
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	d, err := app.NewDoctor(ctx, cfg, newLogger(stderr, "warn", "text"))
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	rep := d.Run(rctx)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "rcsso doctor: rcsso at %s, Rocket.Chat at %s, minting mode %s\n\n", cfg.PublicURL, cfg.RocketChat.URL, cfg.Minting.Mode)
		for _, r := range rep.Results {
			fmt.Fprintln(stdout, r.String())
		}
		fmt.Fprintf(stdout, "\n%d OK, %d WARN, %d FAIL\n", rep.Summary.OK, rep.Summary.Warn, rep.Summary.Fail)
	}
	if rep.Failed() {
		return errChecksFailed
	}
	return nil
}

// runSetup is `rcsso setup`: with an administrator credential, it writes
// what doctor finds missing (iframe settings, Iframe Integration origins,
// the service account's permissions), printing the changes and making
// none without --apply. `rcsso setup --disable-iframe --apply` switches
// iframe login off: the way back into a Rocket.Chat whose iframe login is
// broken.
func runSetup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const synopsis = "setup [--config FILE] [--apply] [--disable-iframe] [--role ROLE] [--admin-user-id ID --admin-token-file FILE | --admin-username U --admin-password-file FILE] [--secret-stdin]"
	fs := newFlagSet("setup", synopsis, stderr)
	var cf configFlags
	cf.register(fs)
	apply := fs.Bool("apply", false, "make the changes (without it, setup only prints them)")
	disable := fs.Bool("disable-iframe", false, "only switch iframe login off (Accounts_iframe_enabled=false): the way back into a Rocket.Chat whose iframe login is broken")
	role := fs.String("role", "", "the role (name or _id) that receives the service account's missing permissions (default: its own custom role, else bot)")
	userID := fs.String("admin-user-id", "", "user id of a Rocket.Chat administrator (with --admin-token-file or --secret-stdin); default: the configured rocketchat.admin_* account")
	username := fs.String("admin-username", "", "username of a Rocket.Chat administrator (with --admin-password-file or --secret-stdin)")
	tokenFile := fs.String("admin-token-file", "", "`file` holding the administrator's personal access token")
	passwordFile := fs.String("admin-password-file", "", "`file` holding the administrator's password")
	stdin := fs.Bool("secret-stdin", false, "read the administrator's token or password from the first line of standard input")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return errArgs(synopsis)
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	d, err := app.NewDoctor(ctx, cfg, newLogger(stderr, "warn", "text"))
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	secret := func(file string) (string, error) {
		switch {
		case *stdin:
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return "", err
			}
			return strings.TrimRight(line, "\r\n"), nil
		case file != "":
			b, err := os.ReadFile(file)
			return strings.TrimSpace(string(b)), err
		}
		return "", nil
	}
	s := &doctor.Setup{Target: &d.Target, Role: *role, DisableIframe: *disable}
	if !*disable {
		s.Need = d.Need
	}
	rc := d.Target.RC
	switch {
	case *userID != "":
		tok, err := secret(*tokenFile)
		if err != nil || tok == "" {
			return fmt.Errorf("--admin-user-id needs the token in --admin-token-file or on standard input (--secret-stdin); tokens are never taken as flags (%v)", err)
		}
		s.Admin = rocketchat.Credentials{UserID: *userID, AuthToken: tok}
	case *username != "":
		pw, err := secret(*passwordFile)
		if err != nil || pw == "" {
			return fmt.Errorf("--admin-username needs the password in --admin-password-file or on standard input (--secret-stdin) (%v)", err)
		}
		res, err := rc.LoginPassword(ctx, *username, pw)
		if err != nil {
			return fmt.Errorf("logging in to Rocket.Chat as %s: %w", *username, err)
		}
		s.Admin, s.Password = res.Credentials(), pw
		defer func() { _ = rc.Logout(context.WithoutCancel(ctx), s.Admin) }()
	case d.Target.Admin != nil:
		cr, err := d.Target.Admin.Credentials(ctx)
		if err != nil {
			return fmt.Errorf("the configured service account (%s): %w", d.Target.AdminKey, err)
		}
		s.Admin, s.Password = cr, cfg.RocketChat.AdminPassword
	default:
		return errors.New("setup needs a Rocket.Chat administrator: give --admin-user-id with --admin-token-file, or --admin-username with --admin-password-file (or --secret-stdin), or configure rocketchat.admin_user_id/admin_token")
	}
	plan, err := s.Plan(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rcsso setup: Rocket.Chat at %s, rcsso at %s\n", cfg.RocketChat.URL, cfg.PublicURL)
	if len(plan.Changes) == 0 {
		fmt.Fprintln(stdout, "Rocket.Chat already has everything setup writes.")
		fmt.Fprint(stdout, plan.Diff())
		return nil
	}
	fmt.Fprintf(stdout, "%d change(s):\n%s", len(plan.Changes), plan.Diff())
	if !*apply {
		fmt.Fprintln(stdout, "Nothing was changed: run again with --apply to make these changes.")
		return nil
	}
	actx, rec, err := adminAudit(ctx, &cfg, stderr)
	if err != nil {
		return err
	}
	defer rec.Close()
	if err := s.Apply(ctx, plan); err != nil {
		audit.Record(actx, audit.Event{Event: audit.Admin, Outcome: audit.Failed, Actor: "setup --apply", Reason: plan.Names() + ": " + mint.FailureReason(err)})
		return err
	}
	audit.Record(actx, audit.Event{Event: audit.Admin, Actor: "setup --apply", Reason: plan.Names()})
	fmt.Fprintf(stdout, "Applied %d change(s). rcsso doctor checks the rest.\n", len(plan.Changes))
	return nil
}
