package rcemu

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// settingDefault is a known Rocket.Chat setting with its default and
// visibility (spec §2.3).
type settingDefault struct {
	value  any
	public bool
}

// hiddenSettings are registered with hidden: true: settings/:_id does not
// find them (RocketChat/Rocket.Chat apps/meteor/server/settings/accounts.ts
// @78e0dc31ede19914425f590ade4de7f53103ed94).
var hiddenSettings = map[string]bool{"Accounts_SystemBlockedUsernameList": true}

// knownSettings are the settings the emulator understands. Keys given in
// Config.Settings or SetSetting that are not listed here are public.
var knownSettings = map[string]settingDefault{
	"Accounts_iframe_enabled":               {false, true},
	"Accounts_iframe_url":                   {"", true},
	"Accounts_Iframe_api_url":               {"", true},
	"Accounts_Iframe_api_method":            {"POST", true},
	"Iframe_Integration_send_enable":        {false, true},
	"Iframe_Integration_send_target_origin": {"*", true},
	"Iframe_Integration_receive_enable":     {false, true},
	"Iframe_Integration_receive_origin":     {"*", true},
	"Site_Url":                              {"", true},
	"Site_Name":                             {"Rocket.Chat", true},
	"Accounts_RequireNameForSignUp":         {true, true},
	"UTF8_User_Names_Validation":            {"[0-9a-zA-Z-_.]+", true},
	"Accounts_LoginExpiration":              {90, true},
	"Accounts_AllowUsernameChange":          {true, true},
	"Accounts_AllowRealNameChange":          {true, true},
	"Accounts_AllowEmailChange":             {true, true},
	"Accounts_AllowPasswordChange":          {true, true},
	"Accounts_AllowUserProfileChange":       {true, true},
	// The two-factor group (RocketChat/Rocket.Chat apps/meteor/server/settings/accounts.ts
	// @78e0dc31ede19914425f590ade4de7f53103ed94): Enabled, By_TOTP_Enabled,
	// By_Email_Enabled and Enforce_Password_Fallback are public,
	// By_Email_Auto_Opt_In is not. Accounts_TwoFactorAuthentication_Enabled
	// starts as Config.TwoFactor (New): the emulator's 2FA is off by
	// default, like TEST_MODE, and its settings say so.
	"Accounts_TwoFactorAuthentication_Enabled":                   {true, true},
	"Accounts_TwoFactorAuthentication_By_TOTP_Enabled":           {true, true},
	"Accounts_TwoFactorAuthentication_By_Email_Enabled":          {true, true},
	"Accounts_TwoFactorAuthentication_By_Email_Auto_Opt_In":      {true, false},
	"Accounts_TwoFactorAuthentication_Enforce_Password_Fallback": {true, true},
	// apps/meteor/app/2fa/server/startup/settings.ts
	// @e0a3449d95373472c9315546a29548457bfca5f0 (twofactor.go).
	"Accounts_TwoFactorAuthentication_MaxDelta":                 {1, false},
	"Accounts_TwoFactorAuthentication_By_Email_Code_Expiration": {3600, false},
	"API_Enable_Rate_Limiter":                                   {true, false},
	"API_Enable_Rate_Limiter_Limit_Calls_Default":               {10, false},
	"API_Enable_Rate_Limiter_Limit_Time_Default":                {60000, false},
	"Accounts_BlockedUsernameList":                              {"", false},
	"Accounts_SystemBlockedUsernameList":                        {"admin,administrator,system,user", false},
	"Accounts_Registration_Users_Default_Roles":                 {"user", false},
	"API_Default_Count":                                         {50, false},
	// Accounts_SearchFields: the user fields channels.members' filter
	// searches (RocketChat/Rocket.Chat apps/meteor/server/lib/findUsersOfRoom.ts
	// @0716b16726b26cf631a801fb90abca44a92c791d reads it).
	"Accounts_SearchFields":                        {"username, name, bio, nickname", false},
	"API_Upper_Count_Limit":                        {100, false},
	"Accounts_TwoFactorAuthentication_RememberFor": {1800, false},
	// Iframe_Restrict_Access defaults to true in Rocket.Chat (X-Frame-Options:
	// sameorigin on every response). The emulator exists to be embedded by
	// cross-origin host pages, so it defaults to false here; set it to true
	// to reproduce the real default.
	"Iframe_Restrict_Access": {false, false},
	"Iframe_X_Frame_Options": {"sameorigin", false},
}

func isPublicSetting(key string) bool {
	d, ok := knownSettings[key]
	return !ok || d.public
}

// isHiddenSetting reports a setting registered with hidden: true, which
// Settings.findOneNotHiddenById does not find.
func isHiddenSetting(key string) bool { return hiddenSettings[key] }

// SetSetting changes a setting at run time (like the admin UI or
// POST /api/v1/settings/:id). The web client reads settings when a page
// loads.
func (s *Server) SetSetting(key string, value any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settings[key] = value
}

// Setting returns the current value of a setting (nil when unknown).
func (s *Server) Setting(key string) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings[key]
}

// settingLocked helpers read typed settings; s.mu must be held.
func (s *Server) settingBool(key string) bool {
	switch v := s.settings[key].(type) {
	case bool:
		return v
	case string:
		b, _ := strconv.ParseBool(v)
		return b
	}
	return false
}

func (s *Server) settingString(key string) string {
	switch v := s.settings[key].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

func (s *Server) settingInt(key string, def int) int {
	switch v := s.settings[key].(type) {
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		return int(v)
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return int(n)
		}
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			return n
		}
	}
	return def
}

// publicSettings returns a copy of all public settings.
func (s *Server) publicSettings() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]any{}
	for k, v := range s.settings {
		if isPublicSetting(k) {
			out[k] = v
		}
	}
	return out
}

// handleSettingsPublic is GET /api/v1/settings.public (no auth):
// {settings:[{_id,value}], count, offset, total, success}. 7.x/8.x filter
// with ?_id=a,b; 6.x with ?query={"_id":…} ({"$in":[…]} supported).
func (s *Server) handleSettingsPublic(c *call) reply {
	all := s.publicSettings()
	keys := slices.Sorted(maps.Keys(all))
	var filter []string
	if s.profile >= profile7 {
		if v := c.query.Get("_id"); v != "" {
			for _, k := range strings.Split(v, ",") {
				filter = append(filter, strings.TrimSpace(k))
			}
		}
	} else if q := c.query.Get("query"); q != "" {
		var m map[string]any
		if err := json.Unmarshal([]byte(q), &m); err != nil {
			return meteorFailure("error-invalid-query", "Invalid query parameter provided: `"+q+"`", nil)
		}
		switch id := m["_id"].(type) {
		case string:
			filter = []string{id}
		case map[string]any:
			if in, ok := id["$in"].([]any); ok {
				for _, x := range in {
					filter = append(filter, fmt.Sprint(x))
				}
			}
		}
	}
	if filter != nil {
		keys = slices.DeleteFunc(keys, func(k string) bool { return !slices.Contains(filter, k) })
	}
	offset, count := c.pagination()
	total := len(keys)
	keys = page(keys, offset, count)
	list := make([]any, 0, len(keys))
	for _, k := range keys {
		list = append(list, map[string]any{"_id": k, "value": all[k]})
	}
	return success(map[string]any{"settings": list, "count": len(list), "offset": offset, "total": total})
}

// handleEmuSettings is GET /_emu/public-settings: the web client's stand-in
// for the DDP public-settings subscription (not rate limited).
func (s *Server) handleEmuSettings(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"profile":  s.profile.String(),
		"version":  s.profile.version(),
		"client":   s.profile.clientGen(),
		"settings": s.publicSettings(),
	})
}

func page[T any](items []T, offset, count int) []T {
	if offset >= len(items) {
		return nil
	}
	items = items[offset:]
	if count > 0 && count < len(items) {
		items = items[:count]
	}
	return items
}
