package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// subcommand is one verb of a command with subcommands (users add, people
// reset, …). Its flags include the configuration flags (--config, …), and
// flags may come before or after its positional arguments:
// "rcsso users add bob --config rcsso.yaml" works like
// "rcsso users --config rcsso.yaml add bob".
type subcommand struct {
	name, args, summary string
	// flags registers the subcommand's own flags.
	flags func(fs *flag.FlagSet)
	// run runs it; cf holds the parsed configuration flags. Nothing may
	// touch state before run (--help never does).
	run func(ctx context.Context, cf *configFlags, args []string, stdout, stderr io.Writer) error
}

// runSubcommands dispatches args ("[--config F] VERB [ARGS] [FLAGS]") to
// one of subs.
func runSubcommands(ctx context.Context, command string, subs []subcommand, args []string, stdout, stderr io.Writer) error {
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: rcsso %s [--config FILE] <subcommand> [arguments] [flags]\n\nSubcommands:\n", command)
		for _, s := range subs {
			fmt.Fprintf(w, "  %-30s %s\n", strings.TrimSpace(s.name+" "+s.args), s.summary)
		}
		fmt.Fprintf(w, "\nRun 'rcsso %s <subcommand> --help' for its flags. Flags may come before or after the arguments.\n", command)
	}
	// Configuration flags may also come before the verb.
	top := newFlagSet(command, command, stderr)
	top.Usage = func() { usage(stderr) }
	var cf configFlags
	cf.register(top)
	if err := parse(top, args); err != nil {
		return err
	}
	rest := top.Args()
	if len(rest) == 0 {
		usage(stderr)
		return errUsage
	}
	for _, s := range subs {
		if s.name != rest[0] {
			continue
		}
		fs := newFlagSet(command+" "+s.name, strings.TrimSpace(command+" "+s.name+" "+s.args+" [--config FILE]"), stderr)
		sub := cf // keep what came before the verb; later flags win
		sub.register(fs)
		top.Visit(func(f *flag.Flag) { _ = fs.Set(f.Name, f.Value.String()) })
		if s.flags != nil {
			s.flags(fs)
		}
		pos, err := parseInterspersed(fs, rest[1:])
		if err != nil {
			return err
		}
		return s.run(ctx, &sub, pos, stdout, stderr)
	}
	return fmt.Errorf("unknown %s subcommand %q: use %s", command, rest[0], subNames(subs))
}

func subNames(subs []subcommand) string {
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// parseInterspersed parses flags anywhere among the positional arguments
// ("--" ends the flags) and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// errArgs is a wrong number of positional arguments.
func errArgs(usage string) error { return errors.New("usage: rcsso " + usage) }
