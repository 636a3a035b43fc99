package ldap

import (
	"bytes"
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	goldap "github.com/go-ldap/ldap/v3"
)

// shape is a compiled filter's structure: its tags, nested, without the
// values.
func shape(p *ber.Packet) string {
	var b strings.Builder
	var walk func(p *ber.Packet, depth int)
	walk = func(p *ber.Packet, depth int) {
		b.WriteString(strings.Repeat(" ", depth))
		b.WriteString(string(rune('A' + int(p.Tag))))
		b.WriteByte('\n')
		// An equality, substring or presence assertion: its children
		// are the attribute and value, not filters.
		switch p.Tag {
		case goldap.FilterAnd, goldap.FilterOr, goldap.FilterNot:
			for _, c := range p.Children {
				walk(c, depth+1)
			}
		}
	}
	walk(p, 0)
	return b.String()
}

// assertionValues are the values of a compiled filter's equality
// assertions.
func assertionValues(p *ber.Packet) [][]byte {
	var out [][]byte
	switch p.Tag {
	case goldap.FilterAnd, goldap.FilterOr, goldap.FilterNot:
		for _, c := range p.Children {
			out = append(out, assertionValues(c)...)
		}
	case goldap.FilterEqualityMatch:
		if len(p.Children) == 2 {
			out = append(out, p.Children[1].Data.Bytes())
		}
	}
	return out
}

// checkNoInjection fails when username changes the structure of
// template's filter or does not arrive intact as the assertion value.
func checkNoInjection(t *testing.T, template, username string) {
	t.Helper()
	want, err := goldap.CompileFilter(buildFilter(template, map[string]string{phUsername: "x"}))
	if err != nil {
		t.Fatal(err)
	}
	f := buildFilter(template, map[string]string{phUsername: username})
	got, err := goldap.CompileFilter(f)
	if err != nil {
		t.Fatalf("user name %q: filter %q does not compile: %v", username, f, err)
	}
	if shape(got) != shape(want) {
		t.Fatalf("user name %q changed the filter's structure: %q", username, f)
	}
	found := false
	for _, v := range assertionValues(got) {
		if bytes.Equal(v, []byte(username)) {
			found = true
		}
	}
	if !found {
		t.Fatalf("user name %q did not arrive as the assertion value of %q: %q", username, f, assertionValues(got))
	}
}

var filterTemplates = []string{
	DefaultUserFilter,
	"(&(objectClass=person)(sAMAccountName={username}))",
	"(|(uid={username})(mail={username}))",
	"(&(objectClass=inetOrgPerson)(!(pwdAccountLockedTime=*))(uid={username}))",
}

// Usernames that would widen or restructure an unescaped filter arrive as
// plain values (RFC 4515 escaping), whatever the template.
func TestFilterEscapesUsername(t *testing.T) {
	for _, u := range []string{
		"*", "alice*", "*)(uid=*", "alice)(|(uid=*", "*))(|(cn=*", "admin*)((|userPassword=*)",
		`\`, `\2a`, "(", ")", "alice\x00", "\x00", "a\x00)(uid=*", "ä*ö", "\xff\xfe", strings.Repeat("*)(", 1000),
	} {
		for _, tmpl := range filterTemplates {
			checkNoInjection(t, tmpl, u)
		}
	}
	if got := buildFilter(DefaultUserFilter, map[string]string{phUsername: "*)(uid=*"}); got != `(uid=\2a\29\28uid=\2a)` {
		t.Fatalf("filter %q", got)
	}
}

// FuzzUserFilter: no user name changes the structure of a user filter.
func FuzzUserFilter(f *testing.F) {
	for _, s := range []string{"alice", "*", "*)(uid=*", `\`, "\x00", "(|(a=b))", "ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, username string) {
		for _, tmpl := range filterTemplates {
			checkNoInjection(t, tmpl, username)
		}
	})
}

// The group filter escapes the person's DN too.
func TestGroupFilterEscapesDN(t *testing.T) {
	dn := `uid=o(b*r)\5Cx,ou=people,dc=example,dc=org`
	f := buildFilter(DefaultGroupFilter, map[string]string{phDN: dn, phUsername: "x"})
	p, err := goldap.CompileFilter(f)
	if err != nil {
		t.Fatal(err)
	}
	if v := assertionValues(p); len(v) != 1 || string(v[0]) != dn {
		t.Fatalf("filter %q carries %q, want the DN", f, v)
	}
}
