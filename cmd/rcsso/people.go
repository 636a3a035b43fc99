package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rcsso/rcsso/internal/app"
	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/store"
)

// person is what rcsso holds for one subject (rcsso people list/show).
type person struct {
	Subject        string     `json:"subject"`
	RCUserID       string     `json:"rocketchat_user_id,omitempty"`
	RCUsername     string     `json:"rocketchat_username,omitempty"`
	TokenMintedAt  *time.Time `json:"token_minted_at,omitempty"`
	TokenValidated *time.Time `json:"token_validated_at,omitempty"`
	LastMintAt     *time.Time `json:"last_mint_at,omitempty"`
	ChatLoggedOut  *time.Time `json:"chat_logged_out_at,omitempty"`
	Deactivated    *time.Time `json:"deactivated_at,omitempty"`
	Creating       string     `json:"creating_username,omitempty"`
	ProfileSynced  *time.Time `json:"profile_synced_at,omitempty"`
	// RoomsAdded are the memberships rcsso added (provisioning.rooms),
	// "<kind>:<id>:<name>"; RoomsSynced when the rooms sync last ran.
	RoomsAdded  []string   `json:"rooms_added,omitempty"`
	RoomsSynced *time.Time `json:"rooms_synced_at,omitempty"`
	UpdatedAt   time.Time  `json:"updated_at"`
}

func when(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func personOf(l store.Link, t *store.Token) person {
	p := person{Subject: l.Subject, RCUserID: l.UserID, RCUsername: l.Username, LastMintAt: when(l.LastMintAt),
		ChatLoggedOut: when(l.ChatLoggedOutAt), Deactivated: when(l.DeactivatedAt), Creating: l.CreatingUsername,
		ProfileSynced: when(l.ProfileSyncedAt), UpdatedAt: l.UpdatedAt}
	if t != nil {
		p.TokenMintedAt, p.TokenValidated = when(t.MintedAt), when(t.ValidatedAt)
	}
	if l.Rooms.UserID != "" && l.Rooms.UserID == l.UserID { // another user's record is void
		p.RoomsAdded, p.RoomsSynced = l.Rooms.Added, when(l.Rooms.SyncedAt)
	}
	return p
}

// markers summarises a person's state in a word or two.
func (p person) markers() string {
	var out []string
	if p.ChatLoggedOut != nil {
		out = append(out, "logged-out-of-chat")
	}
	if p.Deactivated != nil {
		out = append(out, "deactivated")
	}
	if p.Creating != "" {
		out = append(out, "creation-unfinished")
	}
	if len(out) == 0 {
		return "-"
	}
	s := out[0]
	for _, m := range out[1:] {
		s += "," + m
	}
	return s
}

func ago(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	return now.Sub(*t).Round(time.Second).String() + " ago"
}

func runPeople(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var asJSON, unlink bool
	jsonFlag := func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") }
	subs := []subcommand{
		{name: "list", summary: "every person rcsso knows: Rocket.Chat user, cached token, markers", flags: jsonFlag,
			run: func(ctx context.Context, cf *configFlags, args []string, stdout, _ io.Writer) error {
				if len(args) != 0 {
					return errArgs("people list [--json]")
				}
				return withStore(ctx, cf, func(st store.Store) error {
					ex, ok := st.(store.Exporter)
					if !ok {
						return errors.New("this store cannot list people")
					}
					tokens := map[string]store.Token{}
					var links []store.Link
					err := ex.Export(ctx, store.Visitor{
						Link:  func(l store.Link) error { links = append(links, l); return nil },
						Token: func(t store.Token) error { t.Ciphertext = nil; tokens[t.Subject] = t; return nil },
					})
					if err != nil {
						return err
					}
					people := make([]person, 0, len(links))
					for _, l := range links {
						var tp *store.Token
						if t, ok := tokens[l.Subject]; ok {
							tp = &t
						}
						people = append(people, personOf(l, tp))
					}
					if asJSON {
						return json.NewEncoder(stdout).Encode(people)
					}
					now := time.Now()
					tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "SUBJECT\tROCKET.CHAT USER\tUSERNAME\tTOKEN MINTED\tVALIDATED\tMARKERS")
					for _, p := range people {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Subject, orDash(p.RCUserID), orDash(p.RCUsername),
							ago(p.TokenMintedAt, now), ago(p.TokenValidated, now), p.markers())
					}
					return tw.Flush()
				})
			}},
		{name: "show", args: "SUBJECT", summary: "what rcsso holds for one person (never the token itself)", flags: jsonFlag,
			run: func(ctx context.Context, cf *configFlags, args []string, stdout, _ io.Writer) error {
				if len(args) != 1 {
					return errArgs("people show SUBJECT [--json]   (a subject is <source>:<id>, e.g. local:alice)")
				}
				return withStore(ctx, cf, func(st store.Store) error {
					l, err := st.GetLink(ctx, args[0])
					if errors.Is(err, store.ErrNotFound) {
						return fmt.Errorf("rcsso knows no person %q (subjects are <source>:<id>, e.g. local:alice; rcsso people list shows them)", args[0])
					}
					if err != nil {
						return err
					}
					var tp *store.Token
					if t, err := st.GetToken(ctx, args[0]); err == nil {
						tp = &t
					} else if !errors.Is(err, store.ErrNotFound) {
						return err
					}
					p := personOf(l, tp)
					if asJSON {
						return json.NewEncoder(stdout).Encode(p)
					}
					now := time.Now()
					tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
					for _, row := range [][2]string{
						{"subject", p.Subject}, {"Rocket.Chat user id", orDash(p.RCUserID)}, {"Rocket.Chat username", orDash(p.RCUsername)},
						{"cached token minted", ago(p.TokenMintedAt, now)}, {"cached token last validated", ago(p.TokenValidated, now)},
						{"last mint", ago(p.LastMintAt, now)}, {"logged out of the chat", ago(p.ChatLoggedOut, now)},
						{"found deactivated", ago(p.Deactivated, now)}, {"unfinished creation", orDash(p.Creating)},
						{"profile last synced", ago(p.ProfileSynced, now)},
						{"rooms rcsso added", orDash(strings.Join(p.RoomsAdded, " "))}, {"rooms last synced", ago(p.RoomsSynced, now)},
						{"markers", p.markers()},
					} {
						fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
					}
					return tw.Flush()
				})
			}},
		{name: "reset", args: "SUBJECT", summary: "end the cached chat session and clear every marker, so the next visit starts clean",
			flags: func(fs *flag.FlagSet) {
				fs.BoolVar(&unlink, "unlink", false, "also forget which Rocket.Chat user is theirs (the next visit provisions or links one anew)")
			},
			run: func(ctx context.Context, cf *configFlags, args []string, stdout, stderr io.Writer) error {
				if len(args) != 1 {
					return errArgs("people reset SUBJECT [--unlink]")
				}
				cfg, err := cf.load()
				if err != nil {
					return err
				}
				ctx, rec, err := adminAudit(ctx, &cfg, stderr)
				if err != nil {
					return err
				}
				defer rec.Close()
				a, err := app.Build(ctx, cfg, newLogger(stderr, "warn", cfg.LogFormat))
				if err != nil {
					return err
				}
				defer a.Close()
				had, err := a.Broker.Reset(ctx, args[0], unlink)
				what := "reset"
				if unlink {
					what = "reset --unlink"
				}
				switch {
				case err != nil:
					audit.Record(ctx, audit.Event{Event: audit.Admin, Outcome: audit.Failed, Actor: "people reset", Subject: args[0], Reason: what + ": " + mint.FailureReason(err)})
					return err
				case had:
					audit.Record(ctx, audit.Event{Event: audit.Admin, Actor: "people reset", Subject: args[0], Reason: what})
				}
				if !had {
					return fmt.Errorf("rcsso knows no person %q (subjects are <source>:<id>, e.g. local:alice; rcsso people list shows them)", args[0])
				}
				fmt.Fprintf(stdout, "reset %s: cached chat session ended, markers cleared", args[0])
				if unlink {
					fmt.Fprint(stdout, ", Rocket.Chat user forgotten")
				}
				fmt.Fprintln(stdout)
				return nil
			}},
	}
	return runSubcommands(ctx, "people", subs, args, stdout, stderr)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
