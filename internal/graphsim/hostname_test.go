package graphsim_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"github.com/seatledger/seatledger/internal/graphsim"
)

// TestStart_Hostname checks what a container network needs: the
// certificate is valid for the extra host name, the URLs use it, and the CA
// lands where it was asked to (and is removed by Close).
func TestStart_Hostname(t *testing.T) {
	t.Parallel()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	sim, err := graphsim.New(graphsim.Options{Hostnames: []string{"graphsim.test"}, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	info, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	u, err := url.Parse(info.AuthorityURL)
	if err != nil || u.Hostname() != "graphsim.test" {
		t.Fatalf("authority URL = %q, want host graphsim.test", info.AuthorityURL)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("CA file not written where asked: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool},
		// Resolve graphsim.test to the loopback address it listens on.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort("127.0.0.1", u.Port()))
		},
	}}
	resp, err := client.Get(info.AuthorityURL + info.TenantID + "/v2.0/.well-known/openid-configuration")
	if err != nil {
		t.Fatalf("TLS to graphsim.test with the written CA: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("discovery document: status %d", resp.StatusCode)
	}
	if err := sim.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(caFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CA file still there after Close: %v", err)
	}
}
