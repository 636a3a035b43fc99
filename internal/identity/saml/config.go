package saml

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/url"
	"strings"
	"time"

	crewsaml "github.com/crewjam/saml"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
)

// Config is identity source type saml's configuration (an entry of the
// identity list): rcsso as a SAML service provider. Register it at the IdP
// from its metadata, <public_url>/auth/<name>/metadata.
type Config struct {
	// IDPMetadataURL or IDPMetadataFile: the IdP's metadata (one of them).
	IDPMetadataURL  string `koanf:"idp_metadata_url"`
	IDPMetadataFile string `koanf:"idp_metadata_file"`
	// IDPMetadataCertificateFile, optional: PEM certificates the metadata
	// must be signed with.
	IDPMetadataCertificateFile string `koanf:"idp_metadata_certificate_file"`
	// IDPMetadataRefresh; default 1h.
	IDPMetadataRefresh time.Duration `koanf:"idp_metadata_refresh"`
	// EntityID; default <public_url>/auth/<name>/metadata.
	EntityID string `koanf:"entity_id"`
	// Key / KeyFile: the SP's RSA private key, PEM (PKCS #1 or #8).
	Key     string `koanf:"key"`
	KeyFile string `koanf:"key_file"`
	// Certificate / CertificateFile: the SP's certificate for Key, PEM.
	Certificate     string `koanf:"certificate"`
	CertificateFile string `koanf:"certificate_file"`
	// NameIDFormat: persistent (default), email, unspecified, transient, or
	// a format URI.
	NameIDFormat string `koanf:"name_id_format"`
	// AllowIDPInitiated accepts logins started at the IdP (default false).
	AllowIDPInitiated bool `koanf:"allow_idp_initiated"`
	// EmailVerified: the IdP vouches for the e-mail addresses it sends
	// when no email_verified attribute says otherwise (default false).
	EmailVerified bool           `koanf:"email_verified"`
	Label         string         `koanf:"label"`
	Claims        claims.Mapping `koanf:"claims"`

	key       *rsa.PrivateKey
	cert      *x509.Certificate
	metaCerts []*x509.Certificate
	format    crewsaml.NameIDFormat
}

// nameIDFormats are the short names of name_id_format.
var nameIDFormats = map[string]crewsaml.NameIDFormat{
	"":            crewsaml.PersistentNameIDFormat,
	"persistent":  crewsaml.PersistentNameIDFormat,
	"email":       crewsaml.EmailAddressNameIDFormat,
	"unspecified": crewsaml.UnspecifiedNameIDFormat,
	"transient":   crewsaml.TransientNameIDFormat,
}

// Validate implements identity.Config; it reads key_file,
// certificate_file and idp_metadata_certificate_file.
func (c *Config) Validate(b config.Block) error {
	var errs []error
	switch {
	case c.IDPMetadataURL == "" && c.IDPMetadataFile == "":
		errs = append(errs, b.Errorf("idp_metadata_url", "give the IdP's metadata URL (or idp_metadata_file): Keycloak https://<host>/realms/<realm>/protocol/saml/descriptor, "+
			"Microsoft Entra ID the App Federation Metadata Url of the enterprise application"))
	case c.IDPMetadataURL != "" && c.IDPMetadataFile != "":
		errs = append(errs, b.Errorf("idp_metadata_url", "idp_metadata_url and idp_metadata_file are both set: keep one"))
	case c.IDPMetadataURL != "":
		if u, err := url.Parse(c.IDPMetadataURL); err != nil || !MetadataURLAllowed(u) {
			errs = append(errs, b.Errorf("idp_metadata_url", "must be an https URL (http only on a loopback address): the metadata says whose signatures rcsso trusts"))
		}
	}
	if c.IDPMetadataRefresh < 0 || (c.IDPMetadataRefresh > 0 && c.IDPMetadataRefresh < time.Minute) {
		errs = append(errs, b.Errorf("idp_metadata_refresh", "must be 1m or more (default 1h)"))
	}
	if err := b.ReadSecret("key", &c.Key, c.KeyFile); err != nil {
		errs = append(errs, err)
	}
	if err := b.ReadSecret("certificate", &c.Certificate, c.CertificateFile); err != nil {
		errs = append(errs, err)
	}
	switch {
	case c.Key == "" || c.Certificate == "":
		errs = append(errs, b.Errorf("key_file", "the SP needs an RSA key and its certificate (key_file and certificate_file), the same on every rcsso instance and across restarts: "+
			"openssl req -x509 -newkey rsa:3072 -nodes -days 3650 -subj /CN=rcsso -keyout saml.key -out saml.crt"))
	default:
		if err := c.parseKeyPair(); err != nil {
			errs = append(errs, b.Errorf("key_file", "%v", err))
		}
	}
	if c.IDPMetadataCertificateFile != "" {
		var pemText string
		if err := b.ReadSecret("idp_metadata_certificate", &pemText, c.IDPMetadataCertificateFile); err != nil {
			errs = append(errs, err)
		} else if c.metaCerts = parseCertificates([]byte(pemText)); len(c.metaCerts) == 0 {
			errs = append(errs, b.Errorf("idp_metadata_certificate_file", "holds no PEM certificate"))
		}
	}
	if f, ok := nameIDFormats[c.NameIDFormat]; ok {
		c.format = f
	} else if strings.HasPrefix(c.NameIDFormat, "urn:") {
		c.format = crewsaml.NameIDFormat(c.NameIDFormat)
	} else {
		errs = append(errs, b.Errorf("name_id_format", "unknown format %q: use persistent (default), email, unspecified, transient or a urn:oasis:names:tc:SAML format URI", c.NameIDFormat))
	}
	if c.format == crewsaml.TransientNameIDFormat && (c.Claims.Subject == "" || c.Claims.Subject == NameIDClaim) {
		errs = append(errs, b.Errorf("name_id_format", "a transient NameID changes at every login and cannot be the subject: set claims.subject to a stable attribute, or use persistent"))
	}
	if len(c.EntityID) > 1024 {
		errs = append(errs, b.Errorf("entity_id", "longer than 1024 characters"))
	}
	return errors.Join(errs...)
}

// parseKeyPair reads the PEM key and certificate and checks that they
// belong together and that the key is RSA of 2048 bits or more (what IdPs
// verify, and what XML encryption needs).
func (c *Config) parseKeyPair() error {
	pair, err := tls.X509KeyPair([]byte(c.Certificate), []byte(c.Key))
	if err != nil {
		return err
	}
	key, ok := pair.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		return errors.New("the key must be an RSA key: IdPs verify SAML messages signed with RSA, and encrypted assertions need it")
	}
	if key.N.BitLen() < 2048 {
		return errors.New("the RSA key must have 2048 bits or more")
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return err
	}
	c.key, c.cert = key, cert
	return nil
}

func parseCertificates(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

// ManagesRoles implements identity.RoleSource.
func (c *Config) ManagesRoles() (managed, admin bool) { return c.Claims.ManagesRoles() }

// Open implements identity.Config: it reads the IdP metadata.
func (c *Config) Open(ctx context.Context, d identity.Deps) (identity.Source, error) {
	m := c.Claims
	m.AssumeEmailVerified = c.EmailVerified
	return New(ctx, Options{
		Name:                 d.Name,
		Label:                c.Label,
		BaseURL:              strings.TrimRight(d.PublicURL.String(), "/"),
		EntityID:             c.EntityID,
		IDPMetadataURL:       c.IDPMetadataURL,
		IDPMetadataFile:      c.IDPMetadataFile,
		MetadataCertificates: c.metaCerts,
		MetadataRefresh:      c.IDPMetadataRefresh,
		Key:                  c.key,
		Certificate:          c.cert,
		NameIDFormat:         c.format,
		AllowIDPInitiated:    c.AllowIDPInitiated,
		Mapping:              m,
		Sessions:             d.Sessions,
		Once:                 d.Store,
		StateKey:             d.Key("rcsso saml state " + d.Name),
		SecureCookies:        d.SecureCookies,
		SafeReturnTo:         d.SafeReturnTo,
		OnLogout:             d.OnLogout,
		Logger:               d.Logger,
	})
}
