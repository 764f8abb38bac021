package graph_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/seatledger/seatledger/internal/graph"
)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var ignoreRaw = cmpopts.IgnoreFields(graph.Allotment{}, "Raw")

// exchangeStandard is the allotment of list-allotments.response.json and
// get-allotment-for-assignment.response.json.
var exchangeStandard = graph.Allotment{
	ID:            "551f1755-0184-9e51-0bc7-f32bae5a1afb",
	AllottedUnits: 250,
	ConsumedUnits: 224,
	AssignableTo:  []string{"user", "group"},
	Services: []graph.Service{
		{PlanID: "9aaf7827-d63c-4b61-89c3-182f06f82e5c", PlanName: "EXCHANGE_S_STANDARD", AssignableTo: []string{"user", "group"}},
		{PlanID: "6f23d6a9-adbf-481c-8538-b4c095654487", PlanName: "M365_LIGHTHOUSE_CUSTOMER_PLAN1"},
		{PlanID: "882e1d05-acd1-4ccb-8708-6ee03664b117", PlanName: "INTUNE_O365"},
		{PlanID: "5e62787c-c316-451f-b873-1d05acd4d12c", PlanName: "BPOS_S_TODO_1", AssignableTo: []string{"user", "group"}},
	},
	SKUID:         "4b9405b0-7788-4568-add1-99614e613b69",
	SKUPartNumber: "EXCHANGESTANDARD",
}

// teamsEssentials is the allotment of get-allotment.response.json.
var teamsEssentials = graph.Allotment{
	ID:            "fde42873-30b6-436b-b361-21af5a6b84ae",
	AllottedUnits: 100,
	ConsumedUnits: 84,
	AssignableTo:  []string{"user", "group"},
	Services: []graph.Service{
		{PlanID: "f4f2f6de-6830-442b-a433-e92249faebe2", PlanName: "TeamsEss", AssignableTo: []string{"user", "group"}},
	},
	SKUID:         "f245ecc8-75af-4f8e-b61f-27d8114de5f3",
	SKUPartNumber: "Teams_Ess",
	Subscriptions: []graph.Subscription{{
		SubscriptionID:    "f196adf8-75fa-8e4f-c61d-42d8114de4f4",
		State:             "active",
		StartDate:         "2025-07-18",
		NextLifecycleDate: "2025-09-30",
	}},
}

// sameJSON reports whether a and b encode the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("unmarshal %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("unmarshal %s: %v", b, err)
	}
	return cmp.Equal(va, vb)
}

func TestDecodeAllotmentPage_Fixtures(t *testing.T) {
	t.Parallel()
	t.Run("list-allotments", func(t *testing.T) {
		data := fixture(t, "list-allotments.response.json")
		page, err := graph.DecodeAllotmentPage(data)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(graph.AllotmentPage{Allotments: []graph.Allotment{exchangeStandard}}, page, ignoreRaw); diff != "" {
			t.Errorf("DecodeAllotmentPage (-want +got):\n%s", diff)
		}
		var whole struct{ Value []json.RawMessage }
		if err := json.Unmarshal(data, &whole); err != nil {
			t.Fatal(err)
		}
		if !sameJSON(t, whole.Value[0], page.Allotments[0].Raw) {
			t.Errorf("Raw is not the item as received:\n%s", page.Allotments[0].Raw)
		}
	})
	t.Run("list-allotments-expand-waitingmembers keeps unknown properties in Raw", func(t *testing.T) {
		page, err := graph.DecodeAllotmentPage(fixture(t, "list-allotments-expand-waitingmembers.response.json"))
		if err != nil {
			t.Fatal(err)
		}
		want := graph.Allotment{ID: exchangeStandard.ID, AllottedUnits: 250, ConsumedUnits: 224, AssignableTo: []string{"user", "group"}}
		if diff := cmp.Diff([]graph.Allotment{want}, page.Allotments, ignoreRaw); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		var raw map[string]any
		if err := json.Unmarshal(page.Allotments[0].Raw, &raw); err != nil || raw["waitingMembers"] == nil {
			t.Errorf("Raw lost waitingMembers: %s", page.Allotments[0].Raw)
		}
	})
}

func TestDecodeAllotment_Fixtures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want graph.Allotment
	}{
		{"get-allotment.response.json", teamsEssentials},
		{"get-allotment-for-assignment.response.json", exchangeStandard},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data := fixture(t, tt.file)
			var wrapped struct{ Value json.RawMessage }
			if err := json.Unmarshal(data, &wrapped); err != nil {
				t.Fatal(err)
			}
			// The examples wrap the entity in "value"; OData sends it bare.
			// Both decode to the same allotment, with Raw the entity itself.
			for name, body := range map[string][]byte{"wrapped": data, "unwrapped": wrapped.Value} {
				got, err := graph.DecodeAllotment(body)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if diff := cmp.Diff(tt.want, got, ignoreRaw); diff != "" {
					t.Errorf("%s (-want +got):\n%s", name, diff)
				}
				if !sameJSON(t, wrapped.Value, got.Raw) {
					t.Errorf("%s: Raw is not the entity:\n%s", name, got.Raw)
				}
			}
		})
	}
}

func TestDecodeAllotment_Tolerance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		body    string
		want    graph.Allotment
		wantErr string
	}{
		{
			name: "unknown enum members and properties, date-only form",
			body: `{"@odata.context":"https://graph.microsoft.com/beta/$metadata#admin/cloudLicensing/allotments/$entity",
				"id":"a1","assignableTo":"user, group,device,printer","externalServiceIdentifier":{"x":1},
				"services":[{"@odata.type":"#microsoft.graph.cloudLicensing.service","planId":"p","planName":"P","assignableTo":"none"}],
				"subscriptions":[{"subscriptionId":"s","state":"frozen","tags":"trial,unknownFutureValue,shiny","startDate":"2026-01-31","nextLifecycleDate":"2027-01-31T00:00:00+02:00"}]}`,
			want: graph.Allotment{
				ID: "a1", AssignableTo: []string{"user", "group", "device", "printer"},
				Services: []graph.Service{{PlanID: "p", PlanName: "P"}},
				Subscriptions: []graph.Subscription{{
					SubscriptionID: "s", State: "frozen", Tags: []string{"trial", "unknownFutureValue", "shiny"},
					StartDate: "2026-01-31", NextLifecycleDate: "2027-01-31",
				}},
			},
		},
		{
			name: "nulls",
			body: `{"id":"a2","skuId":null,"skuPartNumber":null,"subscriptions":[{"subscriptionId":"s","startDate":null}]}`,
			want: graph.Allotment{ID: "a2", Subscriptions: []graph.Subscription{{SubscriptionID: "s"}}},
		},
		{name: "bad date", body: `{"id":"a3","subscriptions":[{"subscriptionId":"s","startDate":"30/09/2025"}]}`, wantErr: "startDate"},
		{name: "units out of range", body: `{"id":"a4","allottedUnits":3000000000}`, wantErr: "allottedUnits"},
		{name: "no id", body: `{"skuId":"x"}`, wantErr: "no id"},
		{name: "not an object", body: `[1]`, wantErr: "decode allotment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := graph.DecodeAllotment([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, ignoreRaw); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeAllotmentPage_Errors(t *testing.T) {
	t.Parallel()
	for _, body := range []string{`{}`, `{"value":{"id":"x"}}`, `{"value":[{"id":""}]}`, `nope`} {
		if _, err := graph.DecodeAllotmentPage([]byte(body)); err == nil {
			t.Errorf("DecodeAllotmentPage(%s) succeeded", body)
		}
	}
	page, err := graph.DecodeAllotmentPage([]byte(`{"value":[],"@odata.nextLink":"https://graph.microsoft.com/beta/admin/cloudLicensing/allotments?$skiptoken=x"}`))
	if err != nil || len(page.Allotments) != 0 || page.NextLink == "" {
		t.Errorf("empty page with a next link: %+v, %v", page, err)
	}
}
