package oauth2

import (
	"context"
	"maps"
	"regexp"
	"slices"
	"strings"

	xoauth2 "golang.org/x/oauth2"
	"golang.org/x/oauth2/endpoints"

	"github.com/rcsso/rcsso/internal/identity/claims"
)

// preset is what rcsso knows about one provider that is not an OpenID
// Provider: endpoints, scopes, client authentication, claim mapping, and
// how its answers say that an e-mail address is verified (only what the
// provider asserts; an address it does not vouch for is dropped).
type preset struct {
	// title names the provider on the button ("Log in with <title>") and
	// on error pages.
	title                          string
	authURL, tokenURL, userinfoURL string
	scopes                         []string
	authStyle                      xoauth2.AuthStyle
	// authParams are added to the authorization request.
	authParams map[string]string
	// headers are sent with every API call (userinfo, e-mails, groups).
	headers map[string]string
	mapping claims.Mapping
	// groupsField is the default groups_field when groups_url is set.
	groupsField string
	// derive computes rcsso:* claims from the userinfo answer (pure).
	derive func(c map[string]any)
	// extra asks the provider for more after the userinfo answer (GitHub's
	// e-mail addresses). It may only add rcsso:* claims; a failure leaves
	// them out.
	extra func(ctx context.Context, s *Source, token string, c map[string]any)
}

// presets are the providers rcsso knows by name (the preset key).
//
// Every preset asks for PKCE (RFC 7636, S256): GitHub, GitLab and X
// document it, and a provider that does not know the parameters ignores
// them (RFC 6749 §3.1).
var presets = map[string]preset{
	// GitHub OAuth apps:
	// https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps
	// (authorize and token URLs, PKCE, client_id/client_secret in the
	// body). GET /user
	// (https://docs.github.com/en/rest/users/users#get-the-authenticated-user)
	// answers id (an integer that never changes), login (which the person
	// can rename), name (may be null), avatar_url and email, the public
	// profile address, null when the person keeps it private and never
	// said to be verified. GET /user/emails
	// (https://docs.github.com/en/rest/users/emails#list-email-addresses-for-the-authenticated-user,
	// scope user:email) lists {email, primary, verified, visibility}: the
	// primary address is taken when GitHub says it is verified.
	// Organizations as groups: groups_url
	// https://api.github.com/user/orgs?per_page=100 (scope read:org,
	// https://docs.github.com/en/rest/orgs/orgs#list-organizations-for-the-authenticated-user),
	// field login.
	"github": {
		title:       "GitHub",
		authURL:     endpoints.GitHub.AuthURL,
		tokenURL:    endpoints.GitHub.TokenURL,
		userinfoURL: "https://api.github.com/user",
		scopes:      []string{"read:user", "user:email"},
		authStyle:   xoauth2.AuthStyleInParams,
		headers:     map[string]string{"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"},
		mapping: claims.Mapping{Subject: "id", Username: "login", Name: "name", Email: claimEmail,
			EmailVerified: claimEmailVerified, Avatar: "avatar_url"},
		groupsField: "login",
		extra:       githubEmails,
	},
	// GitLab (gitlab.com or self-managed: override the three URLs):
	// https://docs.gitlab.com/api/oauth2/ (authorization code with PKCE).
	// GET /api/v4/user (https://docs.gitlab.com/api/users/, scope
	// read_user) answers id, username, name, avatar_url, email (the
	// primary address) and confirmed_at, the time the account's primary
	// address was confirmed: the e-mail counts as verified when it is set.
	// GitLab is also an OpenID Provider
	// (https://docs.gitlab.com/integration/openid_connect_provider/), and
	// type oidc with issuer https://gitlab.com gets email_verified and
	// groups as standard claims. Groups here: groups_url
	// https://gitlab.com/api/v4/groups?min_access_level=10&per_page=100
	// (scope read_api, https://docs.gitlab.com/api/groups/), field
	// full_path.
	"gitlab": {
		title:       "GitLab",
		authURL:     endpoints.GitLab.AuthURL,
		tokenURL:    endpoints.GitLab.TokenURL,
		userinfoURL: "https://gitlab.com/api/v4/user",
		scopes:      []string{"read_user"},
		authStyle:   xoauth2.AuthStyleInParams,
		mapping: claims.Mapping{Subject: "id", Username: "username", Name: "name", Email: "email",
			EmailVerified: claimEmailVerified, Avatar: "avatar_url"},
		groupsField: "full_path",
		derive:      gitlabDerive,
	},
	// Discord: https://discord.com/developers/docs/topics/oauth2 (URLs,
	// prompt=none skips the consent screen for a person who already
	// authorized rcsso). GET /users/@me
	// (https://discord.com/developers/docs/resources/user#get-current-user,
	// user object https://discord.com/developers/docs/resources/user#user-object;
	// scopes identify, email) answers id (a snowflake, as a string),
	// username, global_name (the display name, may be null), avatar (an
	// image hash), email and verified ("whether the email on this account
	// has been verified"). The avatar URL is built as
	// https://discord.com/developers/docs/reference#image-formatting says.
	// Servers as groups: groups_url
	// https://discord.com/api/v10/users/@me/guilds (scope guilds,
	// https://discord.com/developers/docs/resources/user#get-current-user-guilds),
	// field id (server names are not unique).
	"discord": {
		title:       "Discord",
		authURL:     endpoints.Discord.AuthURL,
		tokenURL:    endpoints.Discord.TokenURL,
		userinfoURL: "https://discord.com/api/v10/users/@me",
		scopes:      []string{"identify", "email"},
		authStyle:   xoauth2.AuthStyleInHeader,
		authParams:  map[string]string{"prompt": "none"},
		mapping: claims.Mapping{Subject: "id", Username: "username", Name: "global_name", Email: "email",
			EmailVerified: "verified", Avatar: claimAvatar},
		groupsField: "id",
		derive:      discordDerive,
	},
	// Facebook Login, manual flow:
	// https://developers.facebook.com/docs/facebook-login/guides/advanced/manual-flow.
	// GET /me?fields=id,name,email
	// (https://developers.facebook.com/docs/graph-api/reference/user;
	// permissions public_profile, email) answers id (app-scoped, stable
	// for this app), name and email. Facebook has no user names in its API
	// and does not say whether the address was verified, so rcsso keeps no
	// e-mail (the account gets a placeholder address) and the user name is
	// derived from the name.
	"facebook": {
		title:       "Facebook",
		authURL:     endpoints.Facebook.AuthURL,
		tokenURL:    endpoints.Facebook.TokenURL,
		userinfoURL: strings.TrimSuffix(endpoints.Facebook.TokenURL, "/oauth/access_token") + "/me?fields=id,name,email",
		scopes:      []string{"public_profile", "email"},
		authStyle:   xoauth2.AuthStyleInParams,
		mapping: claims.Mapping{Subject: "id", Username: "name", Name: "name", Email: claimEmail,
			EmailVerified: claimEmailVerified, Avatar: claimAvatar},
	},
	// X (Twitter): OAuth 2.0 authorization code with PKCE, confidential
	// clients authenticate with HTTP Basic
	// (https://docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code,
	// https://docs.x.com/fundamentals/authentication/oauth-2-0/user-access-token).
	// GET /2/users/me (https://docs.x.com/x-api/users/user-lookup-me;
	// scopes users.read and tweet.read) answers {"data": {id, name,
	// username, profile_image_url}}. X gives no e-mail address here; the
	// account gets a placeholder address.
	"x": {
		title:       "X",
		authURL:     endpoints.X.AuthURL,
		tokenURL:    endpoints.X.TokenURL,
		userinfoURL: "https://api.x.com/2/users/me?user.fields=id,name,username,profile_image_url",
		scopes:      []string{"users.read", "tweet.read"},
		authStyle:   xoauth2.AuthStyleInHeader,
		mapping: claims.Mapping{Subject: "data.id", Username: "data.username", Name: "data.name", Email: claimEmail,
			EmailVerified: claimEmailVerified, Avatar: "data.profile_image_url"},
	},
}

// oidcProviders are providers people may ask for by name that are OpenID
// Providers: type oidc serves them (ID tokens, standard claims).
var oidcProviders = map[string]string{
	"google":    "https://accounts.google.com",
	"microsoft": "https://login.microsoftonline.com/<tenant>/v2.0",
	"apple":     "https://appleid.apple.com",
	"keycloak":  "https://<host>/realms/<realm>",
}

// githubEmails adds the primary address GitHub says is verified, from GET
// <userinfo URL>/emails (the userinfo URL ends in /user). Without the
// user:email scope, or when GitHub fails, the person has no e-mail.
func githubEmails(ctx context.Context, s *Source, token string, c map[string]any) {
	u := s.cfg.UserinfoURL
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	v, err := s.getJSON(ctx, u+"/emails", token)
	if err != nil {
		s.log.Warn("oauth2: GitHub e-mail addresses unavailable; the person gets no e-mail (is the user:email scope granted?)", "err", err)
		return
	}
	if addr, ok := githubPrimaryEmail(v); ok {
		c[claimEmail], c[claimEmailVerified] = addr, true
	}
}

// githubPrimaryEmail finds the entry {"email", "primary": true,
// "verified": true} of a GET /user/emails answer.
func githubPrimaryEmail(v any) (string, bool) {
	list, _ := v.([]any)
	for _, e := range list {
		o, _ := e.(map[string]any)
		addr, _ := o["email"].(string)
		if o["primary"] == true && o["verified"] == true && addr != "" {
			return addr, true
		}
	}
	return "", false
}

// gitlabDerive: GitLab's e-mail is verified when confirmed_at is set.
func gitlabDerive(c map[string]any) {
	at, _ := c["confirmed_at"].(string)
	c[claimEmailVerified] = strings.TrimSpace(at) != ""
}

var (
	discordID     = regexp.MustCompile(`^[0-9]{1,20}$`)
	discordAvatar = regexp.MustCompile(`^(a_)?[0-9a-f]{32}$`)
)

// discordDerive builds the avatar URL from the user id and avatar hash.
func discordDerive(c map[string]any) {
	id, _ := c["id"].(string)
	hash, _ := c["avatar"].(string)
	if discordID.MatchString(id) && discordAvatar.MatchString(hash) {
		c[claimAvatar] = "https://cdn.discordapp.com/avatars/" + id + "/" + hash + ".png"
	}
}

// presetNames lists the presets, sorted, for messages.
func presetNames() string {
	return strings.Join(slices.Sorted(maps.Keys(presets)), ", ")
}

// mergeMapping fills the empty fields of m from def.
func mergeMapping(m, def claims.Mapping) claims.Mapping {
	set := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	set(&m.Subject, def.Subject)
	set(&m.Username, def.Username)
	set(&m.Name, def.Name)
	set(&m.Email, def.Email)
	set(&m.EmailVerified, def.EmailVerified)
	set(&m.Avatar, def.Avatar)
	set(&m.Roles, def.Roles)
	set(&m.Groups, def.Groups)
	if m.RoleMap == nil {
		m.RoleMap = def.RoleMap
	}
	return m
}
