// Command rcsso gives a website single sign-on into an embedded Rocket.Chat
// through Rocket.Chat's iframe authentication.
//
//	rcsso serve   --config rcsso.yaml   run the API URL and IFrame URL service
//	rcsso demo                          emulator + rcsso + demo website on loopback
//	rcsso emulate --admin-password P    a Rocket.Chat emulator for tests
//	rcsso users   add|list|remove       manage local website accounts
//	rcsso people  list|show|reset       what rcsso holds for a person
//	rcsso store   migrate --from --to   copy rcsso's state to another store
//	rcsso version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run rcsso (API URL, IFrame URL, logout) from a configuration", runServe},
		{"demo", "run the Rocket.Chat emulator, rcsso and a demo website on loopback", runDemo},
		{"emulate", "run the Rocket.Chat emulator", runEmulate},
		{"users", "add, list or remove local website accounts (identity source \"local\")", runUsers},
		{"people", "list, show or reset what rcsso holds for a person (link, cached token, markers)", runPeople},
		{"store", "copy rcsso's state to another store (store migrate --from sqlite:PATH --to postgres:URL)", runStore},
		{"doctor", "check the deployment (Rocket.Chat's settings, permissions, framing, reach): OK / WARN / FAIL", runDoctor},
		{"setup", "write what doctor finds missing into Rocket.Chat (prints the changes; --apply makes them)", runSetup},
		{"version", "print the version", func(_ context.Context, _ []string, stdout, _ io.Writer) error {
			fmt.Fprintln(stdout, "rcsso", version)
			return nil
		}},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: rcsso <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'rcsso <command> --help' for a command's flags.")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil, errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			case errors.Is(err, errChecksFailed):
				return 1
			}
			fmt.Fprintln(stderr, "rcsso:", err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "rcsso: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

var errUsage = errors.New("usage")

// newFlagSet returns a FlagSet whose errors and --help go to stderr.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("rcsso "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: rcsso %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags, mapping flag errors to errUsage (already printed).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
