package graph

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// CredentialConfig says how seatledger authenticates to Microsoft Entra.
type CredentialConfig struct {
	TenantID        string
	ClientID        string
	ClientSecret    string // client-credentials with a secret
	CertificatePath string // PEM or PKCS#12 (no password) holding the certificate and its key
	// AuthorityHost is the Entra authority, e.g.
	// https://login.microsoftonline.us/; empty means the public cloud (or
	// AZURE_AUTHORITY_HOST, which azidentity reads).
	AuthorityHost string
	// Transport sends the credential's requests; nil means azcore's
	// default.
	Transport *http.Client
}

// microsoftAuthorities are the Entra login hosts MSAL trusts for instance
// discovery. Any other host (a simulator, a private cloud) makes MSAL ask
// login.microsoftonline.com about it, which fails without internet access,
// so NewCredential disables instance discovery for them.
var microsoftAuthorities = map[string]bool{
	"login.microsoftonline.com":        true,
	"login.microsoft.com":              true,
	"login.windows.net":                true,
	"sts.windows.net":                  true,
	"login.microsoftonline.us":         true,
	"login-us.microsoftonline.com":     true,
	"login.usgovcloudapi.net":          true,
	"login.chinacloudapi.cn":           true,
	"login.partner.microsoftonline.cn": true,
	"login.microsoftonline.de":         true,
}

// NewCredential builds the azidentity credential cfg describes: a client
// secret credential when ClientSecret is set, a certificate credential when
// CertificatePath is set (setting both is an error), else
// DefaultAzureCredential (environment, workload identity, managed
// identity, developer tools). With an AuthorityHost that is not a
// Microsoft login host, instance discovery is disabled.
func NewCredential(cfg CredentialConfig) (azcore.TokenCredential, error) {
	var opts azcore.ClientOptions
	if cfg.Transport != nil {
		opts.Transport = cfg.Transport
	}
	disableDiscovery := false
	if cfg.AuthorityHost != "" {
		u, err := url.Parse(cfg.AuthorityHost)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("authority host %q is not an https URL", cfg.AuthorityHost)
		}
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: cfg.AuthorityHost}
		disableDiscovery = !microsoftAuthorities[strings.ToLower(u.Hostname())]
	}

	switch {
	case cfg.ClientSecret != "" && cfg.CertificatePath != "":
		return nil, errors.New("credential: set a client secret or a certificate, not both")
	case cfg.ClientSecret != "" || cfg.CertificatePath != "":
		if cfg.TenantID == "" || cfg.ClientID == "" {
			return nil, errors.New("credential: a client secret or certificate needs the tenant id and the client id")
		}
	}

	switch {
	case cfg.ClientSecret != "":
		cred, err := azidentity.NewClientSecretCredential(cfg.TenantID, cfg.ClientID, cfg.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: disableDiscovery})
		if err != nil {
			return nil, fmt.Errorf("client secret credential: %w", err)
		}
		return cred, nil
	case cfg.CertificatePath != "":
		data, err := os.ReadFile(cfg.CertificatePath)
		if err != nil {
			return nil, fmt.Errorf("read client certificate: %w", err)
		}
		certs, key, err := azidentity.ParseCertificates(data, nil)
		if err != nil {
			return nil, fmt.Errorf("parse client certificate %s: %w", cfg.CertificatePath, err)
		}
		cred, err := azidentity.NewClientCertificateCredential(cfg.TenantID, cfg.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: disableDiscovery})
		if err != nil {
			return nil, fmt.Errorf("client certificate credential: %w", err)
		}
		return cred, nil
	default:
		cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: opts, TenantID: cfg.TenantID, DisableInstanceDiscovery: disableDiscovery,
		})
		if err != nil {
			return nil, fmt.Errorf("default azure credential: %w", err)
		}
		return cred, nil
	}
}
