package app

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rcsso/rcsso/internal/config"
)

// The typed blocks (a store type's keys, an identity source's, a minting
// mode's) are decoded by their own packages; every message still names the
// full key and how to fix it, from YAML and from RCSSO_* variables alike.
func TestBrokenBlocksNameTheKey(t *testing.T) {
	creds := []string{"RCSSO_ROCKETCHAT_ADMIN_USERNAME=a", "RCSSO_ROCKETCHAT_ADMIN_PASSWORD=b"}
	cases := []struct {
		name, yaml string
		env        []string
		want       string
	}{
		{"misspelt store key", "store:\n  type: sqlite\n  pth: /var/lib/rcsso.db\n", creds, "store.pth: unknown key"},
		{"key of another store type", "store:\n  type: memory\n  path: x.db\n", creds, "store.path: unknown key"},
		{"unknown store variable", "", append(creds, "RCSSO_STORE_PTH=x"), "RCSSO_STORE_PTH does not name a configuration key"},
		{"header without proxies", "identity:\n  - type: header\n    user_header: X-User\n", creds, "identity[0].trusted_proxies"},
		{"bad proxy", "identity:\n  - type: header\n    user_header: X-User\n    trusted_proxies: [nope]\n", creds, "not an IP address"},
		{"unknown source", "identity:\n  - type: kerberos\n", creds, "identity[0].type: unknown identity source \"kerberos\""},
		{"ldap without url", "identity:\n  - type: ldap\n    bind_dn: cn=rcsso,dc=example,dc=org\n    bind_password_file: /dev/null\n", creds, "identity[0].url: the ldap source needs"},
		{"ldap skipping certificate checks", "identity:\n  - type: ldap\n    url: ldaps://ldap.example.org\n    tls: {insecure_skip_verify: true}\n", creds, "identity[0].tls.insecure_skip_verify"},
		{"misspelt source key", "identity:\n  - type: header\n    user_heder: X-User\n    trusted_proxies: [127.0.0.1]\n", creds, "identity[0].user_heder: unknown key"},
		{"key of another source type", "identity:\n  - type: local\n    cookie: x\n", creds, "identity[0].cookie: unknown key"},
		{"jwt without issuer", "identity:\n  - type: jwt\n    cookie: c\n    algorithms: [HS256]\n    secret_file: /dev/null\n    audience: rcsso\n", creds, "identity[0].issuer"},
		{"unit-less whoami timeout", "identity:\n  - type: whoami\n    url: https://www.example.com/me\n    timeout: 3\n", creds, "identity[0].timeout"},
		{"misspelt claim", "identity:\n  - type: jwt\n    cookie: c\n    algorithms: [HS256]\n    secret_file: /dev/null\n    issuer: x\n    audience: y\n    claims: {emial: mail}\n", creds, "identity[0].claims.emial: unknown key"},
		{"oidc without client", "identity:\n  - type: oidc\n    issuer: https://id.example.com\n", creds, "identity[0].client_id"},
		{"no credentials", "", nil, "rocketchat.admin_token: minting mode create-token needs Rocket.Chat admin credentials"},
		{"password mode without credentials", "minting:\n  mode: password\n", nil, "minting mode password needs Rocket.Chat admin credentials"},
		{"unknown mode", "minting:\n  mode: oauth2\n", creds, "minting.mode: unknown mode \"oauth2\""},
		{"oauth, nothing set", "minting:\n  mode: oauth\n", nil, "minting.oauth.service_name"},
		{"oauth, nothing set (client id)", "minting:\n  mode: oauth\n", nil, "minting.oauth.client_id"},
		{"oauth, display name", "minting:\n  mode: oauth\n  oauth:\n    service_name: My Site\n", nil, "minting.oauth.service_name: \"My Site\""},
		{"oauth, short secret", "minting:\n  mode: oauth\n  oauth:\n    service_name: rcsso\n    client_id: rc\n    client_secret: short\n", nil, "minting.oauth.client_secret: use at least 32"},
		{"oauth key in create-token mode", "minting:\n  oauth:\n    service_name: rcsso\n", creds, "minting.oauth: unknown key"},
		{"mongo without url", "minting:\n  mode: mongo-resume\n", nil, "minting.mongo.url"},
		{"mongo negative max tokens", "minting:\n  mode: mongo-iframe\n  mongo:\n    url: mongodb://m/rc\n    max_tokens: -1\n", nil, "minting.mongo.max_tokens"},
		{"bad sqlite path", "store:\n  path: \"file:x.db?mode=ro\"\n", creds, "store.path"},
		{"unknown store type", "store:\n  type: mysql\n", creds, "use memory, postgres, redis, sqlite"},
		{"postgres without url", "store:\n  type: postgres\n", creds, "store.postgres.url"},
		{"postgres without a shared key", "store:\n  type: postgres\n  postgres:\n    url: postgres://rcsso@db/rcsso\n", creds, "store.encryption_key: store type postgres is shared"},
		{"redis without a shared key", "store:\n  type: redis\n  redis:\n    url: redis://cache:6379/0\n", creds, "store.encryption_key: store type redis is shared"},
		{"redis with a bad scheme", "store:\n  type: redis\n  redis:\n    url: http://cache:6379/0\n", creds, "store.redis.url"},
		{"redis key of postgres", "store:\n  type: redis\n  postgres:\n    url: x\n", creds, "store.postgres: unknown key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := ""
			if c.yaml != "" {
				path = filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(path, []byte(c.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg, err := config.Load(path, c.env, nil, Schemas()...)
			if err == nil {
				err = Validate(cfg)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
	// A store type's own variables are known.
	key := "RCSSO_STORE_ENCRYPTION_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	cfg, err := config.Load("", append(creds, key, "RCSSO_STORE_TYPE=redis", "RCSSO_STORE_REDIS_URL=redis://cache:6379/0", "RCSSO_STORE_REDIS_KEY_PREFIX=site1:"), nil, Schemas()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(cfg); err != nil {
		t.Fatalf("RCSSO_STORE_REDIS_*: %v", err)
	}
	cfg, err = config.Load("", append(creds, "RCSSO_STORE_PATH="+filepath.Join(t.TempDir(), "x.db")), nil, Schemas()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(cfg); err != nil {
		t.Fatalf("RCSSO_STORE_PATH: %v", err)
	}
}

// Mode oauth needs no admin credentials; its keys come from YAML, files and
// RCSSO_MINTING_OAUTH_* variables alike.
func TestOAuthModeKeys(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "rcsso.yaml")
	if err := os.WriteFile(path, []byte("store:\n  type: memory\nminting:\n  mode: oauth\n  oauth:\n    service_name: rcsso\n    client_secret_file: "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, []string{"RCSSO_MINTING_OAUTH_CLIENT_ID=rocketchat"}, nil, Schemas()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := Validate(cfg); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}
