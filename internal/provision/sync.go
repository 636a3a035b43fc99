package provision

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store"
)

// Profile fields tracked for sync, in digest order.
const (
	fName = iota
	fEmail
	fAvatar
	fRoles
	nFields
)

// ProfileDigest summarises the profile rcsso writes to Rocket.Chat for id:
// one 8-character digest per field (name, e-mail, avatar, roles), so a sync
// can tell which fields changed. Stored in store.Link.ProfileHash.
func (p *Provisioner) ProfileDigest(id identity.Identity) string {
	f := p.fields(id)
	parts := make([]string, nFields)
	for i, v := range f {
		parts[i] = Digest(v)[:8]
	}
	return strings.Join(parts, ".")
}

func (p *Provisioner) fields(id identity.Identity) [nFields]string {
	var f [nFields]string
	f[fName] = id.Name
	// Only an address the source vouches for is synced: an unvouched one
	// (or none) leaves Rocket.Chat's e-mail as it is, never replacing a
	// real address with a placeholder.
	if e, vouched := AccountEmail(id, p.cfg.PlaceholderEmailDomain); vouched {
		f[fEmail] = e
	}
	f[fAvatar] = id.AvatarURL
	if id.Roles != nil {
		f[fRoles] = strings.Join(p.roles(id), ",")
	}
	return f
}

func (p *Provisioner) roles(id identity.Identity) []string { return Roles(p.cfg.Roles, id) }

// Roles are the Rocket.Chat roles for id: the base roles plus the
// identity's mapped roles, sorted and without duplicates.
func Roles(base []string, id identity.Identity) []string {
	out := slices.Clone(base)
	for _, r := range id.Roles {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	return out
}

// errSkip ends an UpdateLink without writing.
var errSkip = errors.New("provision: nothing to write")

// Sync brings the Rocket.Chat user of id up to date with id's profile:
// users.update for a changed name, e-mail (only one the identity source
// vouches for; kept verified except in minting mode password) or roles
// (only when the identity source manages roles), users.setAvatar for a
// changed avatar URL. It writes only what changed, at most once per
// SyncInterval per person (across rcsso instances: the interval is claimed
// in the store before Rocket.Chat is called), and writes only its own link
// fields (ProfileHash, ProfileSyncedAt). It reports whether Rocket.Chat now
// has id's profile (false when the subject has no link yet or the interval
// has not passed). An identity with an e-mail in the placeholder domain is
// refused (ErrReservedEmail).
func (p *Provisioner) Sync(ctx context.Context, id identity.Identity) (bool, error) {
	l, err := p.st.GetLink(ctx, id.Subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && l.UserID == "") {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	want := p.ProfileDigest(id)
	if l.ProfileHash == want {
		return true, nil
	}
	if err := CheckEmail(id, p.cfg.PlaceholderEmailDomain); err != nil {
		return false, err
	}
	now := p.now().UTC()
	l, err = p.st.UpdateLink(ctx, id.Subject, func(x *store.Link) error {
		if x.UserID != l.UserID || x.ProfileHash == want || now.Sub(x.ProfileSyncedAt) < p.cfg.SyncInterval {
			return errSkip
		}
		x.ProfileSyncedAt = now
		return nil
	})
	if errors.Is(err, errSkip) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	have := strings.Split(l.ProfileHash, ".")
	wantParts := strings.Split(want, ".")
	changed := func(i int) bool { return len(have) != nFields || have[i] != wantParts[i] }
	f := p.fields(id)
	var data rocketchat.UpdateUserData
	dirty := false
	if changed(fName) && f[fName] != "" {
		data.Name, dirty = &f[fName], true
	}
	if changed(fEmail) && f[fEmail] != "" {
		verified := p.cfg.PasswordSealer == nil
		data.Email, data.Verified, dirty = &f[fEmail], &verified, true
	}
	if changed(fRoles) && id.Roles != nil {
		data.Roles, dirty = p.roles(id), true
	}
	if dirty {
		_, err := rcadmin.Do(ctx, p.admin, func(cr rocketchat.Credentials) (rocketchat.User, error) {
			return p.rc.UpdateUser(ctx, cr, l.UserID, data)
		})
		if err != nil {
			return false, err // the interval is claimed: the retry waits for it
		}
	}
	if changed(fAvatar) && id.AvatarURL != "" {
		p.setAvatar(ctx, l.UserID, id)
	}
	_, err = p.st.UpdateLink(ctx, id.Subject, func(x *store.Link) error {
		if x.UserID != l.UserID {
			return errSkip // re-provisioned meanwhile: that link is not this sync's
		}
		x.ProfileHash = want
		return nil
	})
	if err != nil && !errors.Is(err, errSkip) {
		return false, err
	}
	p.log.Info("synced rocket.chat profile", "subject", id.Subject, "rc_user_id", l.UserID)
	return true, nil
}

// setAvatar is best effort: Rocket.Chat fetches the image itself and may
// refuse the URL (private address, not an image); the login goes on.
func (p *Provisioner) setAvatar(ctx context.Context, userID string, id identity.Identity) {
	_, err := rcadmin.Do(ctx, p.admin, func(cr rocketchat.Credentials) (struct{}, error) {
		return struct{}{}, p.rc.SetAvatar(ctx, cr, userID, id.AvatarURL)
	})
	if err != nil {
		p.log.Warn("rocket.chat refused the avatar URL", "subject", id.Subject, "rc_user_id", userID, "err", err)
	}
}

// CheckUser implements mint.UserChecker with users.info by id (as the
// service account): not found is mint.UserGone, active: false is
// mint.UserDeactivated.
func (p *Provisioner) CheckUser(ctx context.Context, l store.Link) (mint.UserState, error) {
	u, err := rcadmin.Do(ctx, p.admin, func(cr rocketchat.Credentials) (rocketchat.User, error) {
		return p.rc.UserInfoByID(ctx, cr, l.UserID)
	})
	switch {
	case rocketchat.IsNotFound(err):
		return mint.UserGone, nil
	case err != nil:
		return mint.UserActive, err
	case !u.Active:
		return mint.UserDeactivated, nil
	}
	return mint.UserActive, nil
}

// ErrUnknownSubject means rcsso has no Rocket.Chat user for the subject.
var ErrUnknownSubject = errors.New("provision: no Rocket.Chat user is linked to this subject")

// Deprovision deactivates (users.setActiveStatus false, which also ends
// every session; protocol spec §4.10) or deletes (users.delete, §4.9) the
// Rocket.Chat user linked to subject. A deleted user's link is forgotten, so
// a later login creates a new user; a deactivated one stays linked.
// Errors: ErrUnknownSubject, or the Rocket.Chat error. Safe to retry: an
// already deleted user counts as done.
func (p *Provisioner) Deprovision(ctx context.Context, subject string, deleteUser bool) (string, error) {
	l, err := p.st.GetLink(ctx, subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && l.UserID == "") {
		return "", ErrUnknownSubject
	}
	if err != nil {
		return "", err
	}
	_, err = rcadmin.Do(ctx, p.admin, func(cr rocketchat.Credentials) (struct{}, error) {
		if deleteUser {
			return struct{}{}, p.rc.DeleteUser(ctx, cr, l.UserID)
		}
		return struct{}{}, p.rc.SetActiveStatus(ctx, cr, l.UserID, false)
	})
	if deleteUser && rocketchat.IsNotFound(err) {
		err = nil
	}
	if err != nil {
		return l.UserID, err
	}
	if deleteUser {
		if err := p.st.DeleteLink(ctx, subject); err != nil {
			return l.UserID, err
		}
	}
	p.log.Info("deprovisioned rocket.chat user", "subject", subject, "rc_user_id", l.UserID, "deleted", deleteUser)
	return l.UserID, nil
}
