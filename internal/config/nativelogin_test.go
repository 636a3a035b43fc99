package config

import "testing"

// website.native_login is off unless set, in the file or the environment.
func TestNativeLoginKey(t *testing.T) {
	cfg, err := Load("", nil, nil)
	if err != nil || cfg.Website.NativeLogin {
		t.Fatalf("default: %v, %v", cfg.Website.NativeLogin, err)
	}
	cfg, err = Load(writeFile(t, "c.yaml", "website:\n  native_login: true\n"), nil, nil)
	if err != nil || !cfg.Website.NativeLogin {
		t.Fatalf("file: %v, %v", cfg.Website.NativeLogin, err)
	}
	cfg, err = Load("", []string{"RCSSO_WEBSITE_NATIVE_LOGIN=true"}, nil)
	if err != nil || !cfg.Website.NativeLogin {
		t.Fatalf("environment: %v, %v", cfg.Website.NativeLogin, err)
	}
}
