package saml

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	crewsaml "github.com/crewjam/saml"
	"github.com/crewjam/saml/samlsp"
)

// maxMetadata bounds the IdP metadata (bytes): one IdP's metadata is a few
// kilobytes (Microsoft Entra ID's about 25 KB); federation aggregates of
// thousands of entities are not what this source reads.
const maxMetadata = 1 << 20

// metadataSource reads the IdP metadata from a URL or a file.
type metadataSource struct {
	url, file string
	client    *http.Client
	certs     []*x509.Certificate // the metadata must be signed by one, when set
}

// load reads, parses and checks the metadata. Errors say where it came
// from and what is wrong.
func (m metadataSource) load(ctx context.Context) (*crewsaml.EntityDescriptor, error) {
	var data []byte
	var err error
	where := m.file
	if m.url != "" {
		where = m.url
		data, err = m.fetch(ctx)
	} else {
		data, err = readFile(m.file)
	}
	if err != nil {
		return nil, fmt.Errorf("IdP metadata %s: %w", where, err)
	}
	var md *crewsaml.EntityDescriptor
	if len(m.certs) > 0 {
		md, err = samlsp.ParseSignedMetadata(data, m.certs)
	} else {
		md, err = samlsp.ParseMetadata(data)
	}
	if err != nil {
		return nil, fmt.Errorf("IdP metadata %s: %w", where, err)
	}
	if err := checkMetadata(md); err != nil {
		return nil, fmt.Errorf("IdP metadata %s: %w", where, err)
	}
	return md, nil
}

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f)
}

func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxMetadata+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxMetadata {
		return nil, fmt.Errorf("larger than %d bytes", maxMetadata)
	}
	return data, nil
}

func (m metadataSource) fetch(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/samlmetadata+xml, application/xml, text/xml")
	resp, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	return readLimited(resp.Body)
}

// MetadataURLAllowed reports whether u may be fetched for IdP metadata:
// https, or http to a loopback address (whoever can change a plain http
// answer on the way chooses whose signatures rcsso trusts).
func MetadataURLAllowed(u *url.URL) bool {
	switch u.Scheme {
	case "https":
		return u.Host != ""
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return true
		}
		ip := net.ParseIP(h)
		return ip != nil && ip.IsLoopback()
	}
	return false
}

// checkMetadataRedirect follows at most 3 redirects, each to a URL
// MetadataURLAllowed accepts.
func checkMetadataRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return errors.New("more than 3 redirects")
	}
	if !MetadataURLAllowed(req.URL) {
		return fmt.Errorf("redirect to %s refused: only https (or http on a loopback address)", req.URL.Redacted())
	}
	return nil
}

// checkMetadata refuses metadata this source cannot use: no IdP role, no
// HTTP-Redirect SingleSignOnService, no signing certificate, or a service
// location that is not an absolute http(s) URL (it becomes a redirect and
// a form action in the visitor's browser).
func checkMetadata(md *crewsaml.EntityDescriptor) error {
	if md.EntityID == "" {
		return errors.New("no entityID")
	}
	if len(md.IDPSSODescriptors) == 0 {
		return errors.New("no IDPSSODescriptor: is this an identity provider's metadata?")
	}
	sso, certs := false, 0
	for _, d := range md.IDPSSODescriptors {
		for _, e := range d.SingleSignOnServices {
			if e.Binding == crewsaml.HTTPRedirectBinding {
				if !httpURL(e.Location) {
					return fmt.Errorf("SingleSignOnService location %q is not an absolute http(s) URL", e.Location)
				}
				sso = true
			}
		}
		for _, e := range d.SingleLogoutServices {
			if (e.Binding == crewsaml.HTTPRedirectBinding || e.Binding == crewsaml.HTTPPostBinding) && !httpURL(e.Location) {
				return fmt.Errorf("SingleLogoutService location %q is not an absolute http(s) URL", e.Location)
			}
		}
		for _, k := range d.KeyDescriptors {
			if k.Use != "" && k.Use != "signing" {
				continue
			}
			for _, c := range k.KeyInfo.X509Data.X509Certificates {
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Data), ""))
				if err != nil {
					return fmt.Errorf("signing certificate: %w", err)
				}
				if _, err := x509.ParseCertificate(der); err != nil {
					return fmt.Errorf("signing certificate: %w", err)
				}
				certs++
			}
		}
	}
	if !sso {
		return errors.New("no SingleSignOnService with the HTTP-Redirect binding")
	}
	if certs == 0 {
		return errors.New("no signing certificate (KeyDescriptor use=\"signing\")")
	}
	return nil
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}
