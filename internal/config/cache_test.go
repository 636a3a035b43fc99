package config

import (
	"strings"
	"testing"
	"time"
)

// The hot cache and Rocket.Chat pacing keys: defaults, the environment,
// and messages that name the key.
func TestCacheAndPacingKeys(t *testing.T) {
	creds := []string{"RCSSO_ROCKETCHAT_ADMIN_USERNAME=a", "RCSSO_ROCKETCHAT_ADMIN_PASSWORD=b"}
	cfg, err := Load("", creds, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Cache.Size != 10000 || cfg.Cache.MaxAge != 5*time.Minute || cfg.RocketChat.MaxConcurrentCalls != 8 || cfg.RocketChat.CallsPerMinute != 8 {
		t.Fatalf("defaults: %+v, %d concurrent, %d a minute", cfg.Cache, cfg.RocketChat.MaxConcurrentCalls, cfg.RocketChat.CallsPerMinute)
	}
	cfg, err = Load("", append(creds, "RCSSO_CACHE_SIZE=0", "RCSSO_CACHE_MAX_AGE=30s", "RCSSO_ROCKETCHAT_CALLS_PER_MINUTE=0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil || cfg.Cache.Size != 0 || cfg.Cache.MaxAge != 30*time.Second || cfg.RocketChat.CallsPerMinute != 0 {
		t.Fatalf("from the environment: %+v, %d a minute, %v", cfg.Cache, cfg.RocketChat.CallsPerMinute, err)
	}
	for env, key := range map[string]string{
		"RCSSO_CACHE_SIZE=-1":                     "cache.size",
		"RCSSO_CACHE_MAX_AGE=0s":                  "cache.max_age",
		"RCSSO_ROCKETCHAT_MAX_CONCURRENT_CALLS=0": "rocketchat.max_concurrent_calls",
		"RCSSO_ROCKETCHAT_CALLS_PER_MINUTE=-5":    "rocketchat.calls_per_minute",
	} {
		cfg, err := Load("", append(creds, env), nil)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v does not name %s", env, err, key)
		}
	}
}
