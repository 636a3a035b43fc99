// Package rcemu is a Rocket.Chat emulator for rcsso's tests and
// `rcsso demo`. It follows /work/shared/reference/rocketchat-protocol.md
// (cited as "spec §n") and the Rocket.Chat OpenAPI files.
//
// Emulated:
//   - REST (§4): GET /api/info; POST /api/v1/login (every body variant of
//     §4.1: user/username/email + password or digest, {resume},
//     {iframe:true, token}); /api/v1/logout; GET /api/v1/me;
//     GET /api/v1/users.info, users.list; POST /api/v1/users.create,
//     users.update, users.createToken, users.delete, users.setActiveStatus,
//     users.logout; GET /api/v1/settings.public, settings.oauth,
//     permissions.listAll, roles.list; POST /api/v1/loginCode.redeem (8.7);
//     the administration endpoints rcsso setup writes through: GET and
//     POST /api/v1/settings/:_id and POST /api/v1/permissions.update
//     (adminapi.go). /api/info carries a supported-versions list when
//     Config.SupportExpires is set (supportedversions.go).
//     POST /api/v1/method.callAnon/login (the web client's DDP-over-REST
//     login, methodcall.go) and users.2fa.sendEmailCode.
//     Status codes and error envelopes follow the version profile (5.x,
//     6.x, 7.x, 8.x, 8.7, 9.0; §4.0, §8), including ajv-style
//     invalid-params errors and 9.0's 403 error-forbidden refusals.
//   - Custom OAuth access-token logins (oauth.go), 9.0's Premium gate on
//     them (Config.OAuthEnterprise) and the built-in WordPress provider
//     outside it; 8.7's server-side OAuth flow with login codes
//     (oauthflow.go).
//   - Users (§5): Random.id() ids, bcrypt(sha256-hex(password)), resume
//     tokens stored as base64(sha256(token)) with a per-user cap
//     (MAX_RESUME_LOGIN_TOKENS; PATs exempt), services.iframe.token,
//     case-insensitive username/e-mail uniqueness, atomic creation.
//   - Two-factor logins (twofactor.go, with Config.TwoFactor): TOTP
//     (RFC 6238) and e-mail codes, which go to an inspectable mailbox
//     (Mailbox, LastEmailCode, GET /_emu/mailbox) instead of being sent.
//   - The API rate limiter (§4.14) and accounts-base's login limit of
//     method.callAnon; roles and permissions (§4.15,
//     permissions.go): the protected roles, custom roles with random _ids
//     (AddRole), users.roles and permission roles as role _ids,
//     GET /api/v1/permissions.listAll and GET /api/v1/roles.list.
//   - Rooms, teams and memberships (rooms.go, roomsapi.go; the OpenAPI
//     excerpt openapi/rooms.yaml): #general (GeneralID) from the start, a
//     default channel that users.create joins new users to unless
//     joinDefaultChannels is false (OAuth-created users too); GET
//     channels.info, channels.members,
//     groups.info, groups.members, teams.info, teams.members; POST
//     channels.invite, channels.kick, groups.invite, groups.kick,
//     teams.addMembers, teams.removeMember, with Rocket.Chat's permission
//     checks (add-user-to-joined-room, add-user-to-any-c-room,
//     add-user-to-any-p-room, remove-user, kick-user-from-any-c/p-room,
//     add-team-member, edit-team-member, view-all-teams; room roles
//     count), canAccessRoom (a private group exists only for its members)
//     and helpers for tests and the demo (AddRoom, AddTeam, JoinRoom,
//     DeleteRoom, RoomMembers, IsMember, IsTeamMember, PostMessage,
//     Messages).
//   - A web client (§1.2–1.7, §3) at / that performs the iframe-login
//     protocol like the Rocket.Chat client generation of the profile
//     (rocketchat-2026.md §1.1: 5.x XHR, 6.x and 7.x fetch, 8.x and later),
//     bad habits included: several API URL calls at once, a call on every
//     load, refused tokens and network errors that leave Rocket.Chat's own
//     login page, host commands heard only after the public settings
//     arrive (after the page's load event), startup and Custom_Script_*
//     events when that generation sends them. web/client.js cites the
//     Rocket.Chat source of each behaviour. It logs in through
//     /_emu/ddp-login, the stand-in for Meteor's DDP login method (not rate
//     limited).
//   - A small chat around that client (chat.go) on those rooms: messages
//     kept in memory on each room (at most 500 per room), a room list of
//     the rooms the user is subscribed to, latest message first, and a
//     message box; a private group the user is not in can be neither read
//     nor written. Through the emulator's own stand-ins for Meteor methods
//     (/_emu/ddp-me, -rooms, -load-history, -send-message).
//   - State across restarts (Config.DataFile, `rcsso emulate --data`):
//     settings, roles, permissions and users in a JSON file (persist.go).
//   - Storage: users in memory (default) or, with Config.MongoURL, in a
//     MongoDB users collection shaped like Rocket.Chat's (§5), so that
//     rcsso's mongo-resume and mongo-iframe minters write what the
//     emulator reads (mongostore.go; `rcsso emulate --mongo-url URL`, or
//     `--mongo` for an embedded FerretDB, package mongoembed).
//
// Not emulated: messages over REST, room creation and the other room
// endpoints, "user joined" system messages, previewing a channel one has
// not joined in the web client, direct messages, threads, discussions,
// DDP/websockets (the
// chat polls), LDAP/SAML/CAS logins, the legacy Meteor OAuth popup/redirect
// flow (/_oauth/<service>), sending e-mail (2FA codes land in the mailbox),
// TOTP backup codes, 2FA "remember me" for tokens, failed-login blocking,
// REST CORS, the 6.0–6.1 XHR hook and 7.8–7.9.3 clients, /embeddedLogin,
// settings, permissions, rooms and teams in MongoDB (they stay in memory in
// MongoDB mode).
package rcemu
