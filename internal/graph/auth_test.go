package graph_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/graphsim"
)

// fixedToken is a credential that always hands out the same bearer token,
// to put tokens azidentity would never produce in front of the simulator.
type fixedToken string

func (f fixedToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(f)}, nil
}

func TestClient_BadTokensAre401(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{})
	for name, tok := range map[string]string{"no token": "", "not a JWT": "garbage", "forged": "eyJhbGciOiJub25lIn0.eyJyb2xlcyI6WyJDbG91ZExpY2Vuc2luZy5SZWFkLkFsbCJdfQ."} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := graph.New(fixedToken(tok), graph.Options{BaseURL: s.info.GraphURL, HTTPClient: s.hc})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.GetAllotment(context.Background(), s.Allotments()[0].ID)
			var gerr *graph.Error
			if !errors.As(err, &gerr) || gerr.Status != http.StatusUnauthorized || gerr.Code != "InvalidAuthenticationToken" {
				t.Fatalf("err = %v, want 401 InvalidAuthenticationToken", err)
			}
			if !graph.IsGUID(gerr.RequestID) {
				t.Errorf("RequestID = %q, want Graph's request-id", gerr.RequestID)
			}
			if n := c.Stats().Requests; n != 1 {
				t.Errorf("%d requests: a 401 must not be retried", n)
			}
		})
	}
}

func TestClient_WrongRoleIs403(t *testing.T) {
	t.Parallel()
	s := startSim(t, graphsim.Options{})
	tok, err := s.MintToken([]string{"User.Read.All"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := graph.New(fixedToken(tok), graph.Options{BaseURL: s.info.GraphURL, HTTPClient: s.hc})
	if err != nil {
		t.Fatal(err)
	}
	var got []graph.Allotment
	for a, err := range c.Allotments(context.Background()) {
		if err != nil {
			var gerr *graph.Error
			if !errors.As(err, &gerr) || gerr.Status != http.StatusForbidden || gerr.Code != "Authorization_RequestDenied" {
				t.Fatalf("err = %v, want 403 Authorization_RequestDenied", err)
			}
			if !graph.IsGUID(gerr.RequestID) || gerr.Message == "" {
				t.Errorf("error = %+v, want a message and Graph's request-id", gerr)
			}
			break
		}
		got = append(got, a)
	}
	if len(got) != 0 || c.Stats().Requests != 1 {
		t.Errorf("got %d allotments in %d requests, want none in one", len(got), c.Stats().Requests)
	}
}
