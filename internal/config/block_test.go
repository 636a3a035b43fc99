package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type exampleBlock struct {
	Path     string        `koanf:"path"`
	Timeout  time.Duration `koanf:"timeout"`
	Scopes   []string      `koanf:"scopes"`
	Postgres struct {
		URL     string `koanf:"url"`
		URLFile string `koanf:"url_file"`
	} `koanf:"postgres"`
}

func TestBlockDecode(t *testing.T) {
	var c exampleBlock
	b := Block{Path: "store", Raw: map[string]any{"path": "x.db", "timeout": "10s", "scopes": "a,b", "postgres": map[string]any{"url": "postgres://h/db"}}}
	if err := b.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.Path != "x.db" || c.Timeout != 10*time.Second || len(c.Scopes) != 2 || c.Postgres.URL != "postgres://h/db" {
		t.Fatalf("decoded %+v", c)
	}
	for _, tc := range []struct {
		raw  map[string]any
		want []string
	}{
		{map[string]any{"pth": "x"}, []string{"store.pth", "unknown key"}},
		{map[string]any{"postgres": map[string]any{"ulr": "x"}}, []string{"store.postgres.ulr", "unknown key"}},
		{map[string]any{"timeout": "12"}, []string{"store.timeout", "no unit"}},
		{map[string]any{"timeout": 12}, []string{"store.timeout", "no unit"}},
		{map[string]any{"timeout": "soon"}, []string{"store.timeout", "not a duration"}},
	} {
		var c exampleBlock
		err := (Block{Path: "store", Raw: tc.raw}).Decode(&c)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Decode(%v) = %v, want an error containing %q", tc.raw, err, w)
			}
		}
	}
}

func TestBlockReadSecret(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "url")
	if err := os.WriteFile(f, []byte("postgres://secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := Block{Path: "store.postgres"}
	var v string
	if err := b.ReadSecret("url", &v, f); err != nil || v != "postgres://secret" {
		t.Fatalf("ReadSecret = %q, %v", v, err)
	}
	if err := b.ReadSecret("url", &v, f); err == nil || !strings.Contains(err.Error(), "store.postgres.url and store.postgres.url_file are both set") {
		t.Fatalf("both set: %v", err)
	}
	v = ""
	if err := b.ReadSecret("url", &v, filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "store.postgres.url_file") {
		t.Fatalf("missing file: %v", err)
	}
}
