package doctor

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
)

// maxSupportedVersions bounds the supportedVersions token rcsso reads
// (64 KiB; Rocket.Chat's is a few KiB).
const maxSupportedVersions = 64 << 10

// SupportWindow reads the end of support of a Rocket.Chat version from the
// supportedVersions token of GET /api/info (rocketchat.ServerInfo): a JWT
// signed by Rocket.Chat Cloud whose payload is {timestamp,
// enforcementStartDate?, versions:[{version, expiration}], exceptions?:
// {versions:[{version, expiration}]}}. Like the mobile app
// (RocketChat/Rocket.Chat.ReactNative app/lib/methods/checkSupportedVersions.ts
// @a76aa77495fe80760f387b0c592f48eeb077245e) it takes the entry whose
// major.minor is the server's, an exception before a regular entry.
// rcsso does not verify the signature (it has no copy of Cloud's key):
// the answer is advice, never a decision.
//
// It returns the expiration, and found=false when the list has no entry
// for the version. Errors: a token that is not three base64url parts with
// a JSON payload, larger than 64 KiB, an unreadable server version, or an
// entry whose expiration is not an RFC 3339 time.
func SupportWindow(token, serverVersion string) (expires time.Time, found bool, err error) {
	if len(token) > maxSupportedVersions {
		return time.Time{}, false, errors.New("supportedVersions is larger than 64 KiB")
	}
	want, ok := majorMinor(serverVersion)
	if !ok {
		return time.Time{}, false, errors.New("the server's version " + strconv.Quote(serverVersion) + " is not major.minor")
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, false, errors.New("supportedVersions is not a JWT (three dot-separated parts)")
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false, errors.New("supportedVersions: the payload is not base64url")
	}
	type entry struct {
		Version    string `json:"version"`
		Expiration string `json:"expiration"`
	}
	var p struct {
		Versions   []entry `json:"versions"`
		Exceptions *struct {
			Versions []entry `json:"versions"`
		} `json:"exceptions"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return time.Time{}, false, errors.New("supportedVersions: the payload is not the JSON Rocket.Chat Cloud signs")
	}
	var lists [][]entry
	if p.Exceptions != nil {
		lists = append(lists, p.Exceptions.Versions)
	}
	lists = append(lists, p.Versions)
	for _, list := range lists {
		for _, e := range list {
			if mm, ok := majorMinor(e.Version); !ok || mm != want {
				continue
			}
			t, err := time.Parse(time.RFC3339Nano, e.Expiration)
			if err != nil {
				return time.Time{}, false, errors.New("supportedVersions: the expiration of " + strconv.Quote(e.Version) + " is not a time")
			}
			return t, true, nil
		}
	}
	return time.Time{}, false, nil
}

// majorMinor reads "8.7" from "8.7", "8.7.1", "v8.7.0-rc.1".
func majorMinor(v string) ([2]int, bool) {
	v = strings.TrimPrefix(strings.TrimSpace(v), "v")
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return [2]int{}, false
	}
	var out [2]int
	for i := range 2 {
		s := parts[i]
		if i == 1 {
			if j := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }); j >= 0 {
				s = s[:j]
			}
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || len(s) > 4 {
			return [2]int{}, false
		}
		out[i] = n
	}
	return out, true
}
