package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
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
	fs := newFlagSet("users", "users [--config FILE] add NAME [--name N] [--email E] [--password-stdin|--generate-password] | list | remove NAME", stderr)
	var cf configFlags
	cf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return errUsage
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	st, err := app.OpenStore(ctx, cfg.Store, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer st.Close()
	switch rest[0] {
	case "add":
		return usersAdd(ctx, st, rest[1:], stdout, stderr)
	case "list":
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
	case "remove":
		if len(rest) != 2 {
			return errors.New("usage: rcsso users remove NAME")
		}
		if err := st.DeleteAccount(ctx, rest[1]); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no local account %q", rest[1])
		} else if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %s\n", local.NormalizeUsername(rest[1]))
		return nil
	}
	return fmt.Errorf("unknown users subcommand %q: use add, list or remove", rest[0])
}

func usersAdd(ctx context.Context, st store.Store, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("users add", "users add NAME [--name N] [--email E] [--password-stdin|--generate-password]", stderr)
	name := fs.String("name", "", "display name")
	email := fs.String("email", "", "e-mail address")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	generate := fs.Bool("generate-password", false, "generate a random password and print it")
	// Accept NAME before or after the flags.
	var username string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		username, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if username == "" && fs.NArg() == 1 {
		username = fs.Arg(0)
	}
	if username == "" {
		fs.Usage()
		return errUsage
	}
	var password string
	switch {
	case *generate:
		password = rand.Text()
	case *fromStdin:
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		password = strings.TrimRight(line, "\r\n")
	default:
		return errors.New("give --password-stdin (for example: echo \"$PW\" | rcsso users add alice --password-stdin) or --generate-password; passwords are never taken as flags")
	}
	a, err := local.NewAccount(username, password, *name, *email, time.Now())
	if err != nil {
		return err
	}
	if err := st.CreateAccount(ctx, a); errors.Is(err, store.ErrConflict) {
		return fmt.Errorf("a local account %q already exists", a.Username)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added %s\n", a.Username)
	if *generate {
		fmt.Fprintf(stdout, "password: %s\n", password)
	}
	return nil
}
