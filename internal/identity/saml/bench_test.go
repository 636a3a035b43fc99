package saml

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/testing/samltest"
)

// alwaysFirst is a store on which every assertion is new, so that one
// valid response can be consumed again and again.
type alwaysFirst struct{}

func (alwaysFirst) UseOnce(context.Context, string, time.Time) (bool, error) { return true, nil }

// BenchmarkConsume measures the ACS's work per response: a valid one (two
// signatures checked), and the most an anonymous poster can make it do with
// a body near maxACSBody.
func BenchmarkConsume(b *testing.B) {
	idp := samltest.Start(b, "127.0.0.1")
	now := time.Now().UTC().Truncate(time.Second)
	s := fuzzSource(b, idp, now)
	s.cfg.Once = alwaysFirst{}
	forge := func(mod func(*samltest.Forge)) []byte {
		fg := forgeSigned()
		fg.Now, fg.Audience, fg.ACS, fg.NameID = now, s.EntityID(), "https://rcsso.example/auth/idp/acs", alice.Email
		if mod != nil {
			mod(&fg)
		}
		return idp.Forge(b, fg)
	}
	// As many attributes as fit in the ACS's body bound once base64'd.
	many := map[string][]string{}
	for i := 0; i < 650; i++ {
		many[fmt.Sprintf("attribute-%05d", i)] = []string{strings.Repeat("v", 20)}
	}
	big := forge(func(fg *samltest.Forge) { fg.Attributes = many })
	bigUnsigned := forge(func(fg *samltest.Forge) { fg.Attributes, fg.SignAssertion, fg.SignResponse = many, false, false })
	for _, c := range []struct {
		name string
		xml  []byte
		ok   bool
	}{
		{"valid", forge(nil), true},
		{"valid, large", big, true},
		{"unsigned, large", bigUnsigned, false},
		{"deep nesting", deepNesting(forge(nil)), false},
	} {
		form := url.Values{"SAMLResponse": {b64(c.xml)}}
		if n := len(form.Encode()); n > maxACSBody {
			b.Fatalf("%s: %d bytes, over the ACS bound", c.name, n)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportMetric(float64(len(c.xml)), "xml-bytes")
			for b.Loop() {
				if _, err := s.consume(context.Background(), form, nil); (err == nil) != c.ok {
					b.Fatalf("consume: %v", err)
				}
			}
		})
	}
}
