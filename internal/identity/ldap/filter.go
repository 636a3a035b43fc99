package ldap

import (
	"fmt"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"
)

// Placeholders in user_filter and group_search.filter.
const (
	phUsername = "{username}"
	phDN       = "{dn}"
)

// buildFilter replaces every placeholder of template with its value
// escaped as an RFC 4515 assertion value (goldap.EscapeFilter: '*', '(',
// ')', '\', NUL and every byte above 0x7f become \xx), so no value can
// change the filter's structure: "(uid={username})" with "*)(uid=*" is
// "(uid=\2a\29\28uid=\2a)", which matches nobody. values maps placeholder
// → raw value.
func buildFilter(template string, values map[string]string) string {
	pairs := make([]string, 0, 2*len(values))
	for ph, v := range values {
		pairs = append(pairs, ph, goldap.EscapeFilter(v))
	}
	return strings.NewReplacer(pairs...).Replace(template)
}

// checkFilter reports whether template, with each of placeholders
// replaced by a harmless value, is a filter go-ldap can send, and that it
// uses required.
func checkFilter(template, required string, placeholders ...string) error {
	if !strings.Contains(template, required) {
		return fmt.Errorf("%q does not contain %s, where the value goes", template, required)
	}
	values := map[string]string{}
	for _, ph := range placeholders {
		values[ph] = "x"
	}
	if _, err := goldap.CompileFilter(buildFilter(template, values)); err != nil {
		return fmt.Errorf("%q is not an LDAP search filter (RFC 4515), e.g. (uid=%s): %v", template, phUsername, err)
	}
	return nil
}
