package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestResolveVersion(t *testing.T) {
	info := func(version string, settings ...string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/rcsso/rcsso", Version: version}}
			for i := 0; i+1 < len(settings); i += 2 {
				bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
			}
			return bi, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	const rev = "964db761df197d40e0b63f58c7ae341a5e801500"
	for _, tc := range []struct {
		name, stamped string
		read          func() (*debug.BuildInfo, bool)
		want          string
	}{
		{"ldflags stamp wins", "v1.4.0-3-g964db76-dirty", info("v1.3.0", "vcs.revision", rev), "v1.4.0-3-g964db76-dirty"},
		{"go install @version", "dev", info("v1.3.0"), "v1.3.0"},
		{"go build on a tag", "dev", info("v1.3.0+dirty", "vcs.revision", rev, "vcs.modified", "true"), "v1.3.0+dirty"},
		{"go build, pseudo-version", "dev", info("v0.0.0-20261130170040-964db761df19+dirty", "vcs.revision", rev), "v0.0.0-20261130170040-964db761df19+dirty"},
		{"revision only", "dev", info("(devel)", "vcs.revision", rev, "vcs.modified", "false"), "dev-964db761df19"},
		{"revision only, dirty", "dev", info("(devel)", "vcs.revision", rev, "vcs.modified", "true"), "dev-964db761df19-dirty"},
		{"short revision", "dev", info("(devel)", "vcs.revision", "abc123"), "dev-abc123"},
		{"no VCS information", "dev", info("(devel)"), "dev"},
		{"empty stamp, no build info", "", none, "dev"},
		{"blank stamp", "  ", info(""), "dev"},
	} {
		if got := resolveVersion(tc.stamped, tc.read); got != tc.want {
			t.Errorf("%s: resolveVersion(%q) = %q, want %q", tc.name, tc.stamped, got, tc.want)
		}
	}
}

// TestVersionStampedByLdflags builds rcsso as install.md says and runs
// `rcsso version`: the -X path main.version must keep working.
func TestVersionStampedByLdflags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command")
		}
	}
	bin := filepath.Join(t.TempDir(), "rcsso")
	args := []string{"build", "-o", bin, "-ldflags", "-X main.version=v9.8.7-test"}
	if raceEnabled {
		args = append(args, "-race") // reuse the packages go test has just compiled
	}
	build := exec.Command(gobin, append(args, ".")...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("rcsso version: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "rcsso v9.8.7-test" {
		t.Fatalf("rcsso version printed %q, want %q", got, "rcsso v9.8.7-test")
	}
}
