package config

import (
	"strings"
	"testing"
)

func TestMintingOAuth(t *testing.T) {
	secretFile := writeFile(t, "secret", strings.Repeat("s", 40)+"\n")
	path := writeFile(t, "rcsso.yaml", `
store:
  type: memory
minting:
  mode: oauth
  oauth:
    service_name: rcsso
    client_secret_file: `+secretFile+`
`)
	cfg, err := Load(path, []string{"RCSSO_MINTING_OAUTH_CLIENT_ID=rocketchat"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// No Rocket.Chat admin credentials: fine in mode oauth.
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	o := cfg.Minting.OAuth
	if o.ServiceName != "rcsso" || o.ClientID != "rocketchat" || o.ClientSecret != strings.Repeat("s", 40) {
		t.Fatalf("minting.oauth = %+v", o)
	}

	for name, c := range map[string]struct {
		mod  func(*Config)
		keys []string
	}{
		"nothing set": {func(c *Config) { c.Minting.OAuth = MintingOAuth{} },
			[]string{"minting.oauth.service_name", "minting.oauth.client_id", "minting.oauth.client_secret"}},
		"display name":  {func(c *Config) { c.Minting.OAuth.ServiceName = "My Site" }, []string{"minting.oauth.service_name"}},
		"short secret":  {func(c *Config) { c.Minting.OAuth.ClientSecret = "short" }, []string{"minting.oauth.client_secret"}},
		"unknown mode":  {func(c *Config) { c.Minting.Mode = "oauth2" }, []string{"minting.mode"}},
		"create-token ": {func(c *Config) { c.Minting.Mode = "create-token" }, []string{"rocketchat.admin_token"}},
	} {
		bad := cfg
		c.mod(&bad)
		err := bad.Validate()
		if err == nil {
			t.Errorf("%s: Validate accepted it", name)
			continue
		}
		for _, k := range c.keys {
			if !strings.Contains(err.Error(), "config: "+k+":") {
				t.Errorf("%s: error does not name %s: %v", name, k, err)
			}
		}
	}
}
