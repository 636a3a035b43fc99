package main

import (
	"context"
	"io"

	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/config"
)

// adminAudit opens the audit log for an operator command (rcsso people
// reset, rcsso setup --apply) and returns ctx carrying it. The command
// appends to the same audit.path file as rcsso serve; when the audit log is
// standard output, the command writes its lines to stderr instead, so that
// its own output stays clean. cfg's audit.path is set to "off" so that an
// app the command builds does not open it a second time.
func adminAudit(ctx context.Context, cfg *config.Config, stderr io.Writer) (context.Context, *audit.Recorder, error) {
	w := io.Discard
	if p := cfg.Audit.Path; p == "" || p == "-" {
		w = stderr
	}
	rec, err := audit.Open(cfg.Audit.Path, w)
	if err != nil {
		return ctx, nil, err
	}
	cfg.Audit.Path = "off"
	return audit.With(ctx, rec), rec, nil
}
