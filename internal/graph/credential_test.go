package graph_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/seatledger/seatledger/internal/graph"
)

func TestNewCredential(t *testing.T) {
	t.Parallel()
	certFile := writeClientCertificate(t)
	tests := []struct {
		name    string
		cfg     graph.CredentialConfig
		wantErr string
		check   func(t *testing.T, cred any)
	}{
		{
			name: "client secret",
			cfg:  graph.CredentialConfig{TenantID: "t1", ClientID: "c1", ClientSecret: "s"},
			check: func(t *testing.T, cred any) {
				if _, ok := cred.(*azidentity.ClientSecretCredential); !ok {
					t.Errorf("got %T, want *azidentity.ClientSecretCredential", cred)
				}
			},
		},
		{
			name: "certificate",
			cfg:  graph.CredentialConfig{TenantID: "t1", ClientID: "c1", CertificatePath: certFile, AuthorityHost: "https://login.microsoftonline.us/"},
			check: func(t *testing.T, cred any) {
				if _, ok := cred.(*azidentity.ClientCertificateCredential); !ok {
					t.Errorf("got %T, want *azidentity.ClientCertificateCredential", cred)
				}
			},
		},
		{
			name: "neither: the default chain",
			cfg:  graph.CredentialConfig{TenantID: "t1", AuthorityHost: "https://127.0.0.1:8443/"},
			check: func(t *testing.T, cred any) {
				if _, ok := cred.(*azidentity.DefaultAzureCredential); !ok {
					t.Errorf("got %T, want *azidentity.DefaultAzureCredential", cred)
				}
			},
		},
		{name: "both", cfg: graph.CredentialConfig{TenantID: "t", ClientID: "c", ClientSecret: "s", CertificatePath: certFile}, wantErr: "not both"},
		{name: "secret without tenant", cfg: graph.CredentialConfig{ClientID: "c", ClientSecret: "s"}, wantErr: "tenant id"},
		{name: "certificate without client", cfg: graph.CredentialConfig{TenantID: "t", CertificatePath: certFile}, wantErr: "client id"},
		{name: "missing certificate file", cfg: graph.CredentialConfig{TenantID: "t", ClientID: "c", CertificatePath: filepath.Join(t.TempDir(), "none.pem")}, wantErr: "read client certificate"},
		{name: "authority without https", cfg: graph.CredentialConfig{TenantID: "t", ClientID: "c", ClientSecret: "s", AuthorityHost: "http://127.0.0.1:8443/"}, wantErr: "https"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cred, err := graph.NewCredential(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, cred)
		})
	}
}

// writeClientCertificate writes a self-signed RSA certificate and its key
// as one PEM file, the form CertificatePath takes.
func writeClientCertificate(t *testing.T) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "seatledger test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	data := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	path := filepath.Join(t.TempDir(), "client.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
