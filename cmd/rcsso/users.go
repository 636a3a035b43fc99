package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rcsso/rcsso/internal/app"
	"github.com/rcsso/rcsso/internal/identity/local"
	"github.com/rcsso/rcsso/internal/store"
)

func runUsers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var add struct {
		name, email     string
		stdin, generate bool
	}
	subs := []subcommand{
		{name: "add", args: "NAME", summary: "add a local account (password from --password-stdin or --generate-password)",
			flags: func(fs *flag.FlagSet) {
				fs.StringVar(&add.name, "name", "", "display name")
				fs.StringVar(&add.email, "email", "", "e-mail address")
				fs.BoolVar(&add.stdin, "password-stdin", false, "read the password from the first line of standard input")
				fs.BoolVar(&add.generate, "generate-password", false, "generate a random password and print it")
			},
			run: func(ctx context.Context, cf *configFlags, args []string, stdout, _ io.Writer) error {
				if len(args) != 1 {
					return errArgs("users add NAME [--name N] [--email E] (--password-stdin | --generate-password)")
				}
				var password string
				switch {
				case add.generate:
					password = rand.Text()
				case add.stdin:
					line, err := bufio.NewReader(os.Stdin).ReadString('\n')
					if err != nil && !errors.Is(err, io.EOF) {
						return err
					}
					password = strings.TrimRight(line, "\r\n")
				default:
					return errors.New("give --password-stdin (for example: echo \"$PW\" | rcsso users add alice --password-stdin) or --generate-password; passwords are never taken as flags")
				}
				a, err := local.NewAccount(args[0], password, add.name, add.email, time.Now())
				if err != nil {
					return err
				}
				return withStore(ctx, cf, func(st store.Store) error {
					if err := st.CreateAccount(ctx, a); errors.Is(err, store.ErrConflict) {
						return fmt.Errorf("a local account %q already exists", a.Username)
					} else if err != nil {
						return err
					}
					fmt.Fprintf(stdout, "added %s\n", a.Username)
					if add.generate {
						fmt.Fprintf(stdout, "password: %s\n", password)
					}
					return nil
				})
			}},
		{name: "list", summary: "list the local accounts",
			run: func(ctx context.Context, cf *configFlags, args []string, stdout, _ io.Writer) error {
				if len(args) != 0 {
					return errArgs("users list")
				}
				return withStore(ctx, cf, func(st store.Store) error {
					accts, err := st.ListAccounts(ctx)
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "USERNAME\tNAME\tEMAIL\tCREATED")
					for _, a := range accts {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Username, a.Name, a.Email, a.CreatedAt.Format(time.RFC3339))
					}
					return tw.Flush()
				})
			}},
		{name: "remove", args: "NAME", summary: "remove a local account",
			run: func(ctx context.Context, cf *configFlags, args []string, stdout, _ io.Writer) error {
				if len(args) != 1 {
					return errArgs("users remove NAME")
				}
				return withStore(ctx, cf, func(st store.Store) error {
					if err := st.DeleteAccount(ctx, args[0]); errors.Is(err, store.ErrNotFound) {
						return fmt.Errorf("no local account %q", args[0])
					} else if err != nil {
						return err
					}
					fmt.Fprintf(stdout, "removed %s\n", local.NormalizeUsername(args[0]))
					return nil
				})
			}},
	}
	return runSubcommands(ctx, "users", subs, args, stdout, stderr)
}

// withStore loads the configuration, opens its store, runs fn and closes
// the store.
func withStore(ctx context.Context, cf *configFlags, fn func(store.Store) error) error {
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg.Store, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	return fn(st)
}
