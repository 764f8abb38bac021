package graphsim

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Tenant is the state a simulator starts from: who may sign in, which SKUs
// exist and which allotments the tenant holds. New validates and copies it;
// later changes to the value passed in do not reach the simulator.
type Tenant struct {
	// ID is the tenant id, used in authority paths and the tokens' tid
	// claim. Empty means the demo tenant's id.
	ID string
	// Apps are the registered applications that may obtain tokens with the
	// client-credentials grant. Empty means one app, DemoApp().
	Apps []App
	// SKUs is the product catalogue the allotments refer to.
	SKUs []SKU
	// Allotments are the tenant's licence pools.
	Allotments []AllotmentState
}

// App is an application registration with a client secret and the
// application permissions (app roles) an administrator granted it. Tokens
// issued to it carry exactly these roles.
type App struct {
	ClientID     string
	ClientSecret string
	Roles        []string
}

// SKU is a product in the tenant's catalogue, such as ENTERPRISEPACK.
type SKU struct {
	ID         string // skuId, GUID-shaped
	PartNumber string // skuPartNumber
	Plans      []Plan // the service plans the SKU contains
}

// Plan is a service plan of a SKU, and the shape of an allotment's services.
type Plan struct {
	ID           string   // planId, GUID-shaped
	Name         string   // planName
	AssignableTo []string // assigneeTypes flags, e.g. ["user", "group"]; empty means "none"
}

// AllotmentState is one allotment as the simulator holds it.
type AllotmentState struct {
	ID            string
	SKUID         string
	SKUPartNumber string // empty in a Tenant given to New: filled from the SKU
	AllottedUnits int32
	ConsumedUnits int32    // a stored number for now; assignments will drive it later
	AssignableTo  []string // assigneeTypes flags; empty means "none"
	// Services are the plans this allotment offers. Nil in a Tenant given
	// to New means all of the SKU's plans; otherwise each must be one of
	// the SKU's plans.
	Services      []Plan
	Subscriptions []Subscription
}

// Subscription is a commerce subscription backing an allotment.
type Subscription struct {
	SubscriptionID    string
	State             string // active, warning, suspended, lockedOut, deleted
	StartDate         string // YYYY-MM-DD
	NextLifecycleDate string // YYYY-MM-DD
	Tags              []string
}

const (
	demoTenantID     = "7f3c2a91-5d4e-4b8a-9c61-2e8f0d4b7a15"
	demoClientID     = "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"
	demoClientSecret = "graphsim-demo-client-secret"
)

// DemoApp returns the application the demo tenant registers: a fixed
// client id and secret with the read and write permissions seatledger
// uses.
func DemoApp() App {
	return App{
		ClientID:     demoClientID,
		ClientSecret: demoClientSecret,
		Roles: []string{
			"CloudLicensing.Read.All",
			"CloudLicensing.AssignLicenses.Organization",
			"User.Read.All",
			"GroupMember.Read.All",
		},
	}
}

// DemoTenant returns a small, deterministic organisation: four allotments
// of three SKUs. ENTERPRISEPACK (Office 365 E3) was bought in two batches,
// the first backed by two subscriptions; Teams_Ess is a trial; the
// EXCHANGESTANDARD subscription has expired and is in its grace period
// (state "warning"). Every call returns a fresh value.
func DemoTenant() Tenant {
	userGroup := []string{"user", "group"}
	e3 := SKU{ID: "6fd2c87f-b296-42f0-b197-1e91e994b900", PartNumber: "ENTERPRISEPACK", Plans: []Plan{
		{ID: "efb87545-963c-4e0d-99df-69c6916d9eb0", Name: "EXCHANGE_S_ENTERPRISE", AssignableTo: userGroup},
		{ID: "5dbe027f-2339-4123-9542-606e4d348a72", Name: "SHAREPOINTENTERPRISE", AssignableTo: userGroup},
		{ID: "43de0ff5-c92c-492b-9116-175376d08c38", Name: "OFFICESUBSCRIPTION", AssignableTo: userGroup},
		{ID: "0feaeb32-d00e-4d66-bd5a-43b5b83db82c", Name: "MCOSTANDARD", AssignableTo: userGroup},
		{ID: "57ff2da0-773e-42df-b2af-ffb7a2317929", Name: "TEAMS1", AssignableTo: userGroup},
		{ID: "2789c901-c14e-48ab-a76a-be334d9d793a", Name: "FORMS_PLAN_E3", AssignableTo: userGroup},
		{ID: "c87f142c-d1e9-4363-8630-aaea9c4d9ae5", Name: "BPOS_S_TODO_2", AssignableTo: userGroup},
		{ID: "882e1d05-acd1-4ccb-8708-6ee03664b117", Name: "INTUNE_O365"},
	}}
	teams := SKU{ID: "f245ecc8-75af-4f8e-b61f-27d8114de5f3", PartNumber: "Teams_Ess", Plans: []Plan{
		{ID: "f4f2f6de-6830-442b-a433-e92249faebe2", Name: "TeamsEss", AssignableTo: userGroup},
	}}
	exchange := SKU{ID: "4b9405b0-7788-4568-add1-99614e613b69", PartNumber: "EXCHANGESTANDARD", Plans: []Plan{
		{ID: "9aaf7827-d63c-4b61-89c3-182f06f82e5c", Name: "EXCHANGE_S_STANDARD", AssignableTo: userGroup},
		{ID: "6f23d6a9-adbf-481c-8538-b4c095654487", Name: "M365_LIGHTHOUSE_CUSTOMER_PLAN1"},
		{ID: "882e1d05-acd1-4ccb-8708-6ee03664b117", Name: "INTUNE_O365"},
		{ID: "5e62787c-c316-451f-b873-1d05acd4d12c", Name: "BPOS_S_TODO_1", AssignableTo: userGroup},
	}}
	return Tenant{
		ID:   demoTenantID,
		Apps: []App{DemoApp()},
		SKUs: []SKU{e3, teams, exchange},
		Allotments: []AllotmentState{
			{
				ID: "3b0c7e52-11d4-8a6f-02e9-6c5d8f1a4b70", SKUID: e3.ID,
				AllottedUnits: 250, ConsumedUnits: 231, AssignableTo: userGroup,
				Subscriptions: []Subscription{
					{SubscriptionID: "d3e8a1f2-6b4c-4e09-a7d5-1c2b3e4f5a60", State: "active", StartDate: "2025-07-01", NextLifecycleDate: "2026-06-30"},
					{SubscriptionID: "e9b1c4d7-2a5f-4c8e-b6d3-0f1e2d3c4b5a", State: "active", StartDate: "2026-01-15", NextLifecycleDate: "2027-01-14"},
				},
			},
			{
				ID: "8e4d2a19-7c33-5b0e-91fa-0d6b3e27c845", SKUID: e3.ID,
				AllottedUnits: 50, ConsumedUnits: 12, AssignableTo: userGroup,
				Subscriptions: []Subscription{
					{SubscriptionID: "a7c2e5f8-3d6b-4a91-8e4c-5b6a7d8e9f01", State: "active", StartDate: "2026-09-01", NextLifecycleDate: "2027-08-31"},
				},
			},
			{
				ID: "c52f9b07-4e81-2d6a-b3c0-71e8a5d9f326", SKUID: teams.ID,
				AllottedUnits: 25, ConsumedUnits: 9, AssignableTo: userGroup,
				Subscriptions: []Subscription{
					{SubscriptionID: "b4d6f8a0-1c3e-4f57-9a2b-6c7d8e9f0a12", State: "active", StartDate: "2026-10-20", NextLifecycleDate: "2026-11-19", Tags: []string{"trial"}},
				},
			},
			{
				ID: "f0a61d3c-29b7-6e45-8d12-b9c4e07a5e81", SKUID: exchange.ID,
				AllottedUnits: 40, ConsumedUnits: 38, AssignableTo: userGroup,
				Subscriptions: []Subscription{
					{SubscriptionID: "c1e3a5b7-9d2f-4b68-8c0a-7d8e9f0a1b23", State: "warning", StartDate: "2025-09-30", NextLifecycleDate: "2026-12-29"},
				},
			},
		},
	}
}

// normalize returns a validated deep copy of t with defaults filled in.
func (t Tenant) normalize() (Tenant, error) {
	var errs []error
	out := Tenant{ID: t.ID}
	if out.ID == "" {
		out.ID = demoTenantID
	}
	if !validTenantID(out.ID) {
		errs = append(errs, fmt.Errorf("tenant id %q: want letters, digits, '-' and '.'", out.ID))
	}
	apps := t.Apps
	if len(apps) == 0 {
		apps = []App{DemoApp()}
	}
	clientIDs := map[string]bool{}
	for i, a := range apps {
		switch {
		case a.ClientID == "" || a.ClientSecret == "":
			errs = append(errs, fmt.Errorf("app %d: client id and secret are required", i))
		case clientIDs[strings.ToLower(a.ClientID)]:
			errs = append(errs, fmt.Errorf("app %q: duplicate client id", a.ClientID))
		}
		clientIDs[strings.ToLower(a.ClientID)] = true
		out.Apps = append(out.Apps, App{ClientID: a.ClientID, ClientSecret: a.ClientSecret, Roles: slices.Clone(a.Roles)})
	}
	skus := map[string]SKU{}
	for _, s := range t.SKUs {
		switch {
		case s.ID == "" || s.PartNumber == "":
			errs = append(errs, fmt.Errorf("sku %q: id and part number are required", s.ID))
		case skus[s.ID].ID != "":
			errs = append(errs, fmt.Errorf("sku %q: duplicate id", s.ID))
		}
		c := SKU{ID: s.ID, PartNumber: s.PartNumber, Plans: clonePlans(s.Plans)}
		skus[s.ID] = c
		out.SKUs = append(out.SKUs, c)
	}
	ids := map[string]bool{}
	for _, a := range t.Allotments {
		c := a.clone()
		if err := c.fill(skus); err != nil {
			errs = append(errs, fmt.Errorf("allotment %q: %w", a.ID, err))
		}
		if ids[c.ID] {
			errs = append(errs, fmt.Errorf("allotment %q: duplicate id", a.ID))
		}
		ids[c.ID] = true
		out.Allotments = append(out.Allotments, c)
	}
	if err := errors.Join(errs...); err != nil {
		return Tenant{}, fmt.Errorf("invalid tenant: %w", err)
	}
	return out, nil
}

// fill checks a against the catalogue and fills the SKU part number and
// services when they were left empty.
func (a *AllotmentState) fill(skus map[string]SKU) error {
	if a.ID == "" {
		return errors.New("id is required")
	}
	sku, ok := skus[a.SKUID]
	if !ok {
		return fmt.Errorf("unknown sku %q", a.SKUID)
	}
	switch a.SKUPartNumber {
	case "":
		a.SKUPartNumber = sku.PartNumber
	case sku.PartNumber:
	default:
		return fmt.Errorf("sku part number %q, but sku %q is %q", a.SKUPartNumber, sku.ID, sku.PartNumber)
	}
	if a.AllottedUnits < 0 || a.ConsumedUnits < 0 {
		return errors.New("units must not be negative")
	}
	if a.Services == nil {
		a.Services = clonePlans(sku.Plans)
	}
	for _, sv := range a.Services {
		if !slices.ContainsFunc(sku.Plans, func(p Plan) bool { return p.ID == sv.ID }) {
			return fmt.Errorf("service %q is not a plan of sku %q", sv.ID, sku.ID)
		}
	}
	for _, s := range a.Subscriptions {
		if s.SubscriptionID == "" || s.State == "" {
			return errors.New("subscription id and state are required")
		}
		for _, d := range []string{s.StartDate, s.NextLifecycleDate} {
			if _, err := time.Parse(time.DateOnly, d); err != nil {
				return fmt.Errorf("subscription %q: date %q is not YYYY-MM-DD", s.SubscriptionID, d)
			}
		}
	}
	return nil
}

func (a AllotmentState) clone() AllotmentState {
	a.AssignableTo = slices.Clone(a.AssignableTo)
	a.Services = clonePlans(a.Services)
	subs := a.Subscriptions
	a.Subscriptions = nil
	for _, s := range subs {
		s.Tags = slices.Clone(s.Tags)
		a.Subscriptions = append(a.Subscriptions, s)
	}
	return a
}

func clonePlans(ps []Plan) []Plan {
	if ps == nil {
		return nil
	}
	out := make([]Plan, 0, len(ps))
	for _, p := range ps {
		p.AssignableTo = slices.Clone(p.AssignableTo)
		out = append(out, p)
	}
	return out
}

// validTenantID reports whether id is usable in an authority URL, by the
// same rule azidentity applies.
func validTenantID(id string) bool {
	if id == "" {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}
