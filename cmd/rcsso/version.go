package main

import (
	"runtime/debug"
	"strings"
)

// init replaces an unstamped version ("dev", main.go) with what the Go
// toolchain recorded in the binary, so that `rcsso version` and the start-up
// log name the build even without -ldflags.
func init() { version = resolveVersion(version, debug.ReadBuildInfo) }

// resolveVersion returns the version rcsso reports, first of:
//
//   - stamped, the value set with -ldflags "-X main.version=v1.2.3" (as
//     scripts and the Dockerfile do from `git describe --tags --always
//     --dirty`), unless it is empty or "dev";
//   - the main module's version in the build information: "v1.2.3" for
//     `go install github.com/rcsso/rcsso/cmd/rcsso@v1.2.3`; for `go build`
//     in a git clone, Go 1.24 and later record the tag ("v1.2.3",
//     "v1.2.3+dirty") or a pseudo-version
//     ("v0.0.0-20261130170040-964db761df19+dirty");
//   - "dev-" and the first 12 hex digits of the VCS revision (vcs.revision),
//     with "-dirty" when the tree had uncommitted changes (vcs.modified),
//     for a build that recorded the revision but no module version;
//   - "dev": no information (go run, -buildvcs=false, a source tree
//     without .git such as a git worktree or a tarball).
//
// read is debug.ReadBuildInfo (a parameter so that tests can give any
// build information).
func resolveVersion(stamped string, read func() (*debug.BuildInfo, bool)) string {
	if s := strings.TrimSpace(stamped); s != "" && s != "dev" {
		return s
	}
	bi, ok := read()
	if !ok || bi == nil {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	v := "dev-" + rev
	if dirty {
		v += "-dirty"
	}
	return v
}
