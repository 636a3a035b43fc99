package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rcsso/rcsso/internal/demo"
	"github.com/rcsso/rcsso/internal/rcemu"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "demo [--site ADDR] [--rcsso ADDR] [--rocketchat ADDR] [--profile VERSION]", stderr)
	o := demo.Options{}
	fs.StringVar(&o.SiteAddr, "site", "127.0.0.1:8000", "demo website address (another free port is used if it is taken)")
	fs.StringVar(&o.RcssoAddr, "rcsso", "127.0.0.1:8080", "rcsso address (another free port is used if it is taken)")
	fs.StringVar(&o.RocketChatAddr, "rocketchat", "127.0.0.1:3000", "Rocket.Chat emulator address (another free port is used if it is taken)")
	fs.StringVar(&o.Profile, "profile", "8.x", "emulated Rocket.Chat version: "+rcemu.ProfileNames)
	logLevel := fs.String("log-level", "warn", "log level")
	if err := parse(fs, args); err != nil {
		return err
	}
	o.Logger = newLogger(stderr, *logLevel, "text")
	r, err := demo.Start(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, r.Banner())
	err = r.Wait()
	fmt.Fprintln(stdout, "rcsso demo stopped.")
	return err
}
