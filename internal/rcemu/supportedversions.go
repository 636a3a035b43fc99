package rcemu

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"
)

// supportedVersions is the supportedVersions member of GET /api/info when
// Config.SupportExpires is set: Rocket.Chat caches the list Rocket.Chat
// Cloud signs for a registered workspace (a JWT) and hands it to every
// caller of /api/info (RocketChat/Rocket.Chat apps/meteor/app/api/server/lib/getServerInfo.ts
// @04e159238b796d6ac66df754022a7fe7f5c081f3). The payload is
// {timestamp, versions:[{version, expiration}], messages}; the mobile app
// finds the entry matching the server's major.minor and refuses the server
// once its expiration has passed (RocketChat/Rocket.Chat.ReactNative
// app/lib/methods/checkSupportedVersions.ts @a76aa77495fe80760f387b0c592f48eeb077245e).
// The emulator cannot sign with Cloud's key: its signature part is a
// placeholder, so a client that verifies the token rejects it, as it would
// a forged one.
func (s *Server) supportedVersions() string {
	if s.cfg.SupportExpires.IsZero() {
		return ""
	}
	header, _ := json.Marshal(map[string]any{"alg": "RS256", "typ": "JWT"})
	payload, _ := json.Marshal(map[string]any{
		"timestamp": isoTime(s.started),
		"versions":  []any{map[string]any{"version": s.profile.version(), "expiration": isoTime(s.cfg.SupportExpires)}},
		"messages":  []any{},
	})
	enc := base64.RawURLEncoding.EncodeToString
	return enc(header) + "." + enc(payload) + "." + enc([]byte("rcemu-unsigned"))
}

// parseDate reads YYYY-MM-DD (midnight UTC) or RFC 3339.
func parseDate(v string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("want a date YYYY-MM-DD or RFC 3339")
}
