package graphsim_test

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/seatledger/seatledger/internal/graphsim"
)

func TestDemoTenant(t *testing.T) {
	t.Parallel()
	if diff := cmp.Diff(graphsim.DemoTenant(), graphsim.DemoTenant()); diff != "" {
		t.Fatalf("DemoTenant is not deterministic (-first +second):\n%s", diff)
	}
	sim, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	all := sim.Allotments()
	perSKU := map[string]int{}
	var trial, warning int
	for _, a := range all {
		perSKU[a.SKUPartNumber]++
		if len(a.Services) == 0 || len(a.Subscriptions) == 0 {
			t.Errorf("allotment %s has no services or no subscriptions", a.ID)
		}
		for _, s := range a.Subscriptions {
			if s.State == "warning" {
				warning++
			}
			for _, tag := range s.Tags {
				if tag == "trial" {
					trial++
				}
			}
		}
	}
	if diff := cmp.Diff(map[string]int{"ENTERPRISEPACK": 2, "Teams_Ess": 1, "EXCHANGESTANDARD": 1}, perSKU); diff != "" {
		t.Errorf("allotments per SKU (-want +got):\n%s", diff)
	}
	if trial != 1 || warning != 1 {
		t.Errorf("got %d trial and %d warning subscriptions, want one each", trial, warning)
	}
}

func TestNew_RejectsInvalidTenants(t *testing.T) {
	t.Parallel()
	mutate := func(f func(*graphsim.Tenant)) *graphsim.Tenant {
		tn := graphsim.DemoTenant()
		f(&tn)
		return &tn
	}
	tests := []struct {
		name string
		opts graphsim.Options
		want string
	}{
		{"unknown sku", graphsim.Options{Tenant: mutate(func(tn *graphsim.Tenant) { tn.Allotments[0].SKUID = "nope" })}, "unknown sku"},
		{"duplicate allotment", graphsim.Options{Tenant: mutate(func(tn *graphsim.Tenant) { tn.Allotments[1].ID = tn.Allotments[0].ID })}, "duplicate id"},
		{"wrong part number", graphsim.Options{Tenant: mutate(func(tn *graphsim.Tenant) { tn.Allotments[0].SKUPartNumber = "E5" })}, "part number"},
		{"service not in sku", graphsim.Options{Tenant: mutate(func(tn *graphsim.Tenant) {
			tn.Allotments[0].Services = []graphsim.Plan{{ID: "f4f2f6de-6830-442b-a433-e92249faebe2"}}
		})}, "not a plan"},
		{"bad date", graphsim.Options{Tenant: mutate(func(tn *graphsim.Tenant) {
			tn.Allotments[0].Subscriptions[0].StartDate = "2025-09-30T00:00:00.000Z"
		})}, "YYYY-MM-DD"},
		{"bad tenant id", graphsim.Options{Tenant: mutate(func(tn *graphsim.Tenant) { tn.ID = "a/b" })}, "tenant id"},
		{"app without secret", graphsim.Options{Tenant: mutate(func(tn *graphsim.Tenant) { tn.Apps = []graphsim.App{{ClientID: "x"}} })}, "secret"},
		{"page size", graphsim.Options{PageSize: 1000}, "page size"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := graphsim.New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestNew_FillsFromCatalogueAndCopies(t *testing.T) {
	t.Parallel()
	tn := graphsim.Tenant{
		SKUs: []graphsim.SKU{{ID: skuA, PartNumber: "SKU_A", Plans: []graphsim.Plan{{ID: "p1", Name: "PLAN_1", AssignableTo: []string{"user"}}}}},
		Allotments: []graphsim.AllotmentState{{
			ID: "a1", SKUID: skuA, AllottedUnits: 3, ConsumedUnits: 1,
			Subscriptions: []graphsim.Subscription{{SubscriptionID: "s1", State: "active", StartDate: "2026-01-01", NextLifecycleDate: "2027-01-01"}},
		}},
	}
	sim, err := graphsim.New(graphsim.Options{Tenant: &tn})
	if err != nil {
		t.Fatal(err)
	}
	tn.Allotments[0].AllottedUnits = 99 // the simulator holds its own copy
	got := sim.Allotments()
	got[0].Services[0].Name = "CHANGED" // and hands out copies
	want := []graphsim.AllotmentState{{
		ID: "a1", SKUID: skuA, SKUPartNumber: "SKU_A", AllottedUnits: 3, ConsumedUnits: 0, // derived: no assignments
		Services:      []graphsim.Plan{{ID: "p1", Name: "PLAN_1", AssignableTo: []string{"user"}}},
		Subscriptions: []graphsim.Subscription{{SubscriptionID: "s1", State: "active", StartDate: "2026-01-01", NextLifecycleDate: "2027-01-01"}},
	}}
	if diff := cmp.Diff(want, sim.Allotments()); diff != "" {
		t.Errorf("Allotments (-want +got):\n%s", diff)
	}
}

func TestServer_StartClose(t *testing.T) {
	t.Parallel()
	sim, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.GraphURL, "https://127.0.0.1:") || !strings.HasSuffix(info.GraphURL, "/beta") ||
		info.AuthorityURL != strings.TrimSuffix(info.GraphURL, "beta") {
		t.Errorf("Info URLs: graph %q, authority %q", info.GraphURL, info.AuthorityURL)
	}
	pem, err := os.ReadFile(info.CAFile)
	if err != nil || string(pem) != string(info.CAPEM) {
		t.Errorf("CAFile %s: %v; holds the CA: %v", info.CAFile, err, string(pem) == string(info.CAPEM))
	}
	if _, err := sim.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start succeeded")
	}
	// A client that does not trust the CA is refused.
	if resp, err := http.Get(info.GraphURL); err == nil {
		resp.Body.Close()
		t.Error("plain client trusted the simulator's certificate")
	}
	if err := sim.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := sim.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := os.Stat(info.CAFile); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CAFile after Close: %v, want it removed", err)
	}
	if resp, err := http.Get(info.GraphURL); err == nil {
		resp.Body.Close()
		t.Error("still serving after Close")
	}

	never, err := graphsim.New(graphsim.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := never.Close(); err != nil {
		t.Errorf("Close of a server never started: %v", err)
	}
}
