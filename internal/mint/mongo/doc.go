// Package mongo is rcsso's direct-MongoDB mode: it writes Rocket.Chat's
// users collection itself instead of calling Rocket.Chat's REST API
// (DESIGN.md, Minters table; protocol spec §2.1, §2.2, §5). It needs a
// MongoDB user that may read and write the Rocket.Chat database, and it
// needs no Rocket.Chat admin credentials, no CREATE_TOKENS_FOR_USERS and
// is not subject to Rocket.Chat's REST rate limiter.
//
//   - Provisioner finds the Rocket.Chat user of a website identity (by
//     rcsso's link, then by e-mail, then by username) or inserts one
//     document shaped like Rocket.Chat's own (spec §5), relying on the
//     unique indexes on username and emails.address, which it creates
//     when missing (unique, sparse: what Meteor's accounts package
//     creates). Several rcsso processes racing to create one person end
//     with one document. The insert is a single document, so a MongoDB
//     that goes away mid-write leaves no half-created user and a retry
//     adopts what was written.
//   - ResumeMinter (mode mongo-resume) pushes a resume token
//     {when, hashedToken: base64(sha256(token))} into
//     services.resume.loginTokens, like Meteor's login, and trims the
//     array to Rocket.Chat's per-user cap (MAX_RESUME_LOGIN_TOKENS,
//     default 50; personal access tokens are neither counted nor
//     dropped). The token is a "loginToken": it works on web, desktop and
//     mobile clients and with REST (X-Auth-Token).
//   - IframeMinter (mode mongo-iframe) writes services.iframe.token, the
//     value Rocket.Chat's "iframe" login handler looks up (spec §2.1), and
//     answers {"token": …}. Limits: only the web and desktop clients use
//     it (the mobile apps read only loginToken); the value is stored in
//     plaintext in MongoDB (anyone who can read the database can log in
//     as that user until the value changes); and Rocket.Chat's e-mail
//     two-factor authentication applies to iframe logins: a user with
//     services.email2fa.enabled and a verified e-mail gets "totp-required"
//     and can never finish the login. Rocket.Chat opts every user it
//     creates into e-mail 2FA by default (Accounts_TwoFactorAuthentication_
//     By_Email_Auto_Opt_In). Users inserted by this package's Provisioner
//     get no services.email2fa at all, and emails.verified is what the
//     identity source says. For other users IframeMinter.Mint fails with
//     ErrEmail2FA unless the rocketchat_settings collection says e-mail
//     2FA is off. Prefer mongo-resume.
//
// MongoDB compatibility: everything here uses only equality queries on
// (dotted) fields, a case-insensitive anchored $regex where Rocket.Chat
// uses one, $set, $unset, a plain $push and single-document inserts, so
// that it behaves the same on MongoDB and on FerretDB v1 (the test
// server), which silently ignores $slice in $push, never matches
// $elemMatch, ignores a partial-document $pull, has no collations and no
// transactions, does not enforce unique indexes on array fields such as
// emails.address (only username's), and applies every update by reading
// the document and writing it back without isolation, so concurrent
// updates of one document can lose writes there (on MongoDB each update
// is atomic; the guarantees below hold on MongoDB). Arrays are therefore
// trimmed by read-modify-write: read services.resume.loginTokens, filter
// it in Go, and $set it back only if the array and _updatedAt are still
// exactly what was read; a lost race is retried. Rocket.Chat's own
// logins push tokens without touching _updatedAt, which is why the array
// itself is part of the guard.
//
// E-mail addresses are compared case-insensitively the way Rocket.Chat
// does it (an exact match first, then an anchored case-insensitive regular
// expression), and every candidate is confirmed in Go with a lower-cased
// comparison, since neither FerretDB nor Rocket.Chat's indexes have a
// case-insensitive collation. New users get the address as the website
// gave it (trimmed), like Rocket.Chat's users.create. Usernames are
// matched exactly, and a case variant already in use counts as taken.
//
// Errors name the mode, the step and the Rocket.Chat user id
// ("mongo-resume: pushing the token for user X: …") and never contain a
// token.
package mongo
