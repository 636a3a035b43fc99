package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpen(t *testing.T) {
	var out bytes.Buffer
	for _, p := range []string{"", "-"} {
		out.Reset()
		r, err := Open(p, &out)
		if err != nil {
			t.Fatal(err)
		}
		r.Record(context.Background(), Event{Event: Mint, Subject: "local:a"})
		if !strings.Contains(out.String(), `"event":"mint","outcome":"ok","subject":"local:a"`) {
			t.Fatalf("path %q: %q", p, out.String())
		}
	}
	out.Reset()
	r, err := Open("off", &out)
	if err != nil || r.Enabled() {
		t.Fatal(err)
	}
	r.Record(context.Background(), Event{Event: Mint})
	if out.Len() != 0 {
		t.Fatal("audit.path off wrote", out.String())
	}
	_, err = Open(filepath.Join(t.TempDir(), "missing", "audit.jsonl"), nil)
	if err == nil || !strings.Contains(err.Error(), "audit.path") || !strings.Contains(err.Error(), `"off"`) {
		t.Fatalf("a path in a missing directory: %v", err)
	}
}

// The context carries the Recorder and the request's metadata; a context
// without a Recorder records nothing (and does not panic).
func TestRecordFromContext(t *testing.T) {
	Record(context.Background(), Event{Event: Mint})
	var out bytes.Buffer
	ctx := WithRequest(context.Background(), New(&out), "REQ123", "198.51.100.1")
	Record(ctx, Event{Event: LoginFailed, Outcome: Denied, Username: strings.Repeat("é", 100) + "\n\"}"})
	var e Event
	if err := json.Unmarshal(out.Bytes(), &e); err != nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
	if e.RequestID != "REQ123" || e.ClientIP != "198.51.100.1" || len(e.Username) > 128 || strings.ContainsRune(e.Username, '\uFFFD') {
		t.Fatalf("%+v", e)
	}
	if strings.Count(out.String(), "\n") != 1 {
		t.Fatalf("a hostile user name broke the line: %q", out.String())
	}
}

// SIGHUP after logrotate: Reopen writes to a new file at the path.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	r, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Record(context.Background(), Event{Event: Mint, Subject: "one"})
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	r.Record(context.Background(), Event{Event: Mint, Subject: "two"})
	if err := r.Reopen(); err != nil {
		t.Fatal(err)
	}
	r.Record(context.Background(), Event{Event: Mint, Subject: "three"})
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), `"two"`) || strings.Contains(string(cur), `"two"`) || !strings.Contains(string(cur), `"three"`) {
		t.Fatalf("rotated: %q, current: %q", old, cur)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
}
