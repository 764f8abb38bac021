package graph_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// sim is a simulator serving HTTPS on a loopback port.
type sim struct {
	*graphsim.Server
	info graphsim.Info
	hc   *http.Client // trusts the simulator's CA
}

func startSim(t *testing.T, opts graphsim.Options) sim {
	t.Helper()
	s, err := graphsim.New(opts)
	if err != nil {
		t.Fatalf("graphsim.New: %v", err)
	}
	info, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatalf("graphsim Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(info.CAPEM) {
		t.Fatal("no CA in Info.CAPEM")
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	return sim{Server: s, info: info, hc: &http.Client{Transport: tr}}
}

// client returns a graph client for the simulator, authenticating through
// azidentity against the simulator's authority with the given secret.
func (s sim) client(t *testing.T, secret string, opts graph.Options) *graph.Client {
	t.Helper()
	cred, err := graph.NewCredential(graph.CredentialConfig{
		TenantID:      s.info.TenantID,
		ClientID:      s.info.ClientID,
		ClientSecret:  secret,
		AuthorityHost: s.info.AuthorityURL,
		Transport:     s.hc,
	})
	if err != nil {
		t.Fatalf("NewCredential: %v", err)
	}
	if opts.BaseURL == "" {
		opts.BaseURL = s.info.GraphURL
	}
	opts.HTTPClient = s.hc
	c, err := graph.New(cred, opts)
	if err != nil {
		t.Fatalf("graph.New: %v", err)
	}
	return c
}

// fromSim is what the client should decode for an allotment the simulator
// holds.
func fromSim(a graphsim.AllotmentState) graph.Allotment {
	out := graph.Allotment{
		ID: a.ID, AllottedUnits: a.AllottedUnits, ConsumedUnits: a.ConsumedUnits, AssignableTo: a.AssignableTo,
		SKUID: a.SKUID, SKUPartNumber: a.SKUPartNumber,
	}
	for _, p := range a.Services {
		out.Services = append(out.Services, graph.Service{PlanID: p.ID, PlanName: p.Name, AssignableTo: p.AssignableTo})
	}
	for _, s := range a.Subscriptions {
		out.Subscriptions = append(out.Subscriptions, graph.Subscription{
			SubscriptionID: s.SubscriptionID, State: s.State, StartDate: s.StartDate,
			NextLifecycleDate: s.NextLifecycleDate, Tags: s.Tags,
		})
	}
	return out
}

func collect(t *testing.T, c *graph.Client) ([]graph.Allotment, error) {
	t.Helper()
	var got []graph.Allotment
	for a, err := range c.Allotments(context.Background()) {
		if err != nil {
			return got, err
		}
		got = append(got, a)
	}
	return got, nil
}

// manyAllotments is a tenant with n allotments of one SKU.
func manyAllotments(n int) graphsim.Tenant {
	tn := graphsim.Tenant{SKUs: []graphsim.SKU{{
		ID: "6fd2c87f-b296-42f0-b197-1e91e994b900", PartNumber: "ENTERPRISEPACK",
		Plans: []graphsim.Plan{{ID: "efb87545-963c-4e0d-99df-69c6916d9eb0", Name: "EXCHANGE_S_ENTERPRISE", AssignableTo: []string{"user", "group"}}},
	}}}
	for i := range n {
		tn.Allotments = append(tn.Allotments, graphsim.AllotmentState{
			ID: fmt.Sprintf("0000%04d-0000-4000-8000-000000000000", i), SKUID: "6fd2c87f-b296-42f0-b197-1e91e994b900",
			AllottedUnits: int32(i + 1), ConsumedUnits: int32(i / 2), AssignableTo: []string{"user"},
			Subscriptions: []graphsim.Subscription{{
				SubscriptionID: fmt.Sprintf("sub-%d", i), State: "active", StartDate: "2026-02-01", NextLifecycleDate: "2027-01-31",
				Tags: []string{"trial"}[:i%2],
			}},
		})
	}
	return tn
}

func TestClient_Allotments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		tenant       *graphsim.Tenant
		simPageSize  int
		clientPage   int
		wantRequests int64
	}{
		{"demo tenant, one page", nil, 0, 0, 1},
		{"demo tenant, client asks for pages of 3", nil, 0, 3, 2},
		{"23 allotments, server pages of 4", new(manyAllotments(23)), 4, 0, 6},
		{"23 allotments, client pages of 5", new(manyAllotments(23)), 4, 5, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := startSim(t, graphsim.Options{Tenant: tt.tenant, PageSize: tt.simPageSize})
			c := s.client(t, s.info.ClientSecret, graph.Options{PageSize: tt.clientPage})
			got, err := collect(t, c)
			if err != nil {
				t.Fatalf("Allotments: %v", err)
			}
			var want []graph.Allotment
			for _, a := range s.Allotments() {
				want = append(want, fromSim(a))
			}
			if diff := cmp.Diff(want, got, ignoreRaw, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Allotments differ from the simulator's (-sim +client):\n%s", diff)
			}
			for _, a := range got {
				if len(a.Raw) == 0 || !strings.Contains(string(a.Raw), `"@odata.type"`) {
					t.Errorf("allotment %s: Raw = %s", a.ID, a.Raw)
				}
			}
			st := c.Stats()
			if st.Requests != tt.wantRequests || st.Throttled != 0 || st.BytesReceived == 0 {
				t.Errorf("Stats = %+v, want %d requests, 0 throttled, some bytes", st, tt.wantRequests)
			}
		})
	}
}

func TestClient_Allotments_StopsWhenTheCallerDoes(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{Tenant: new(manyAllotments(10)), PageSize: 2})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	n := 0
	for _, err := range c.Allotments(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	if got := c.Stats().Requests; got != 2 {
		t.Errorf("requests after reading 3 items of pages of 2 = %d, want 2", got)
	}
}

func TestClient_GetAllotment(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{})
	c := s.client(t, s.info.ClientSecret, graph.Options{})
	ctx := context.Background()

	for _, a := range s.Allotments() {
		got, err := c.GetAllotment(ctx, a.ID)
		if err != nil {
			t.Fatalf("GetAllotment(%s): %v", a.ID, err)
		}
		if diff := cmp.Diff(fromSim(a), got, ignoreRaw, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("GetAllotment(%s) (-sim +client):\n%s", a.ID, diff)
		}
	}

	_, err := c.GetAllotment(ctx, "no-such-allotment")
	var gerr *graph.Error
	if !errors.As(err, &gerr) {
		t.Fatalf("GetAllotment(unknown) = %v, want a *graph.Error", err)
	}
	if gerr.Status != http.StatusNotFound || gerr.Code != "notFound" || gerr.InnerCode != "resourceNotFound" || len(gerr.RequestID) != 36 {
		t.Errorf("error = %+v, want 404 notFound/resourceNotFound with a request id", gerr)
	}
	if !strings.Contains(err.Error(), gerr.RequestID) || !strings.Contains(err.Error(), "no-such-allotment") {
		t.Errorf("error text %q should name the id and the request-id", err)
	}
	if st := c.Stats(); st.Requests != int64(len(s.Allotments())+1) {
		t.Errorf("Stats.Requests = %d: a 404 must not be retried", st.Requests)
	}
}

func TestClient_WrongSecret(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{})
	c := s.client(t, "not-the-secret", graph.Options{})

	_, err := c.GetAllotment(context.Background(), s.Allotments()[0].ID)
	var authErr *azidentity.AuthenticationFailedError
	if !errors.As(err, &authErr) {
		t.Fatalf("err = %v, want an azidentity.AuthenticationFailedError", err)
	}
	if !strings.Contains(err.Error(), "AADSTS7000215") || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("error should carry Entra's explanation: %v", err)
	}
	if strings.Contains(err.Error(), "not-the-secret") {
		t.Error("the error repeats the secret")
	}
	if n := c.Stats().Requests; n != 0 {
		t.Errorf("%d requests reached Graph without a token", n)
	}
	if _, err := collect(t, c); !errors.As(err, &authErr) {
		t.Errorf("Allotments: err = %v, want the authentication error", err)
	}
}

func TestClient_Forbidden(t *testing.T) {
	t.Parallel()
	tn := graphsim.DemoTenant()
	tn.Apps = []graphsim.App{{ClientID: "0a0a0a0a-0000-4000-8000-000000000001", ClientSecret: "pw", Roles: []string{"User.Read.All"}}}
	s := startSim(t, graphsim.Options{Tenant: &tn})
	c := s.client(t, "pw", graph.Options{})

	_, err := collect(t, c)
	var gerr *graph.Error
	if !errors.As(err, &gerr) || gerr.Status != http.StatusForbidden || gerr.Code != "Authorization_RequestDenied" {
		t.Fatalf("err = %v, want 403 Authorization_RequestDenied", err)
	}
	if n := c.Stats().Requests; n != 1 {
		t.Errorf("%d requests: a 403 must not be retried", n)
	}
}

func TestNew_Options(t *testing.T) {
	t.Parallel()
	cred, err := graph.NewCredential(graph.CredentialConfig{TenantID: "t", ClientID: "c", ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := graph.New(nil, graph.Options{}); err == nil {
		t.Error("New(nil credential) succeeded")
	}
	for _, o := range []graph.Options{{BaseURL: "graph.microsoft.com/beta"}, {BaseURL: "ftp://x/beta"}, {PageSize: 1000}, {PageSize: -1}, {MaxConcurrent: -1}} {
		if _, err := graph.New(cred, o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
	if _, err := graph.New(cred, graph.Options{}); err != nil {
		t.Errorf("New with defaults: %v", err)
	}
}
