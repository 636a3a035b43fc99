package provision

import (
	"fmt"
	"strings"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store"
)

// AdoptPolicy says which Rocket.Chat users that rcsso did not create may be
// linked to a person (configuration key provisioning.adopt). Whatever the
// policy, a Rocket.Chat user linked to one subject is never linked to
// another (the store enforces it: store.ErrLinkTaken).
type AdoptPolicy string

const (
	// AdoptNever (the default) links only users rcsso created for the
	// person, including one whose creation rcsso started but did not see
	// finish (store.Link.CreatingUsername). A pre-existing user with the
	// person's username makes rcsso use the suffixed username instead.
	AdoptNever AdoptPolicy = "never"
	// AdoptVerifiedEmail also links a pre-existing user with the person's
	// mapped username when the identity source vouches for the person's
	// e-mail (email_verified) and that user holds the same address,
	// verified on the Rocket.Chat side too (an unverified address could
	// have been typed in by anybody registering on Rocket.Chat). For
	// workspaces that had users before rcsso.
	AdoptVerifiedEmail AdoptPolicy = "verified-email"
)

// ParseAdoptPolicy checks a provisioning.adopt value ("" = AdoptNever).
func ParseAdoptPolicy(s string) (AdoptPolicy, error) {
	switch AdoptPolicy(s) {
	case "", AdoptNever:
		return AdoptNever, nil
	case AdoptVerifiedEmail:
		return AdoptVerifiedEmail, nil
	}
	return "", fmt.Errorf("%q is not a policy: use never (default) or verified-email", s)
}

// Candidate is a Rocket.Chat user found under the username rcsso would
// give a person, as both provisioners (REST, MongoDB) see it.
type Candidate struct {
	ID, Username string
	Emails       []rocketchat.Email
	// CreatedAt is the user's creation time; zero when Rocket.Chat did not
	// say (users.info shows it to callers with view-full-other-user-info).
	CreatedAt time.Time
}

// creationSkew tolerates clock differences between rcsso and Rocket.Chat
// when telling whether a user was created after rcsso asked for it.
const creationSkew = 5 * time.Minute

// MayAdopt decides whether candidate c may become id's Rocket.Chat user.
// pending is id's link as stored (CreatingUsername, CreatingAt: a creation
// rcsso started); email and vouched are AccountEmail(id, …). It returns
// the reason, for logs.
func MayAdopt(policy AdoptPolicy, id identity.Identity, pending store.Link, c Candidate, email string, vouched bool) (bool, string) {
	if pending.CreatingUsername != "" && strings.EqualFold(pending.CreatingUsername, c.Username) && holds(c, email, false) &&
		(c.CreatedAt.IsZero() || !c.CreatedAt.Before(pending.CreatingAt.Add(-creationSkew))) {
		return true, "rcsso created this user (its earlier attempt did not finish)"
	}
	if policy != AdoptVerifiedEmail {
		return false, "provisioning.adopt is never: rcsso links only users it created"
	}
	if !vouched {
		return false, "the identity source does not vouch for the person's e-mail (email_verified)"
	}
	if !holds(c, email, true) {
		return false, "the Rocket.Chat user does not hold the person's e-mail as a verified address"
	}
	return true, "provisioning.adopt is verified-email and the verified e-mails match"
}

// holds reports whether c has address email (case-insensitively), verified
// on the Rocket.Chat side when verified is true.
func holds(c Candidate, email string, verified bool) bool {
	for _, e := range c.Emails {
		if strings.EqualFold(e.Address, email) && (e.Verified || !verified) {
			return true
		}
	}
	return false
}
