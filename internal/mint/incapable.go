package mint

import "errors"

// ErrIncapable means Rocket.Chat answers but the minting mode cannot work
// with it as it is set up: the service account lacks a permission,
// users.createToken refuses rcsso's secret, or (mode oauth) Rocket.Chat 9.0
// switched the Custom OAuth service off. Errors wrapping it say what to
// change on which side. rcsso refuses to start with it; met at run time it
// is a 502 with a message for the site administrator.
var ErrIncapable = errors.New("Rocket.Chat cannot mint tokens for rcsso")
