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
	ID string `json:"id,omitempty"`
	// Apps are the registered applications that may obtain tokens with the
	// client-credentials grant. Empty means one app, DemoApp().
	Apps []App `json:"apps,omitempty"`
	// SKUs is the product catalogue the allotments refer to.
	SKUs []SKU `json:"skus"`
	// Allotments are the tenant's licence pools.
	Allotments []AllotmentState `json:"allotments"`
	// Users are the directory's users.
	Users []UserState `json:"users,omitempty"`
	// Groups are the directory's groups with their direct members.
	Groups []GroupState `json:"groups,omitempty"`
	// Devices are the directory's devices.
	Devices []DeviceState `json:"devices,omitempty"`
	// Assignments link allotments to users, groups and devices. Seats,
	// consumedUnits and the waiting room are derived from them.
	Assignments []AssignmentState `json:"assignments,omitempty"`
	// WaitingMembers optionally fixes who already waits (and since when);
	// each must be a member that the assignments make a candidate for the
	// allotment. Members over capacity that are not listed wait from the
	// simulator's start.
	WaitingMembers []WaitingMemberState `json:"waitingMembers,omitempty"`
	// AssignmentErrors are errors recorded before the start; the plan
	// rules add the ones the assignments imply.
	AssignmentErrors []AssignmentErrorState `json:"assignmentErrors,omitempty"`
	// PlanRules are the service-plan dependencies and exclusions that
	// licence processing enforces.
	PlanRules []PlanRule `json:"planRules,omitempty"`
}

// App is an application registration with a client secret and the
// application permissions (app roles) an administrator granted it. Tokens
// issued to it carry exactly these roles.
type App struct {
	ClientID     string   `json:"clientId"`
	ClientSecret string   `json:"clientSecret"`
	Roles        []string `json:"roles"`
}

// SKU is a product in the tenant's catalogue, such as ENTERPRISEPACK.
type SKU struct {
	ID         string `json:"id"`         // skuId, GUID-shaped
	PartNumber string `json:"partNumber"` // skuPartNumber
	Plans      []Plan `json:"plans"`      // the service plans the SKU contains
}

// Plan is a service plan of a SKU, and the shape of an allotment's services.
type Plan struct {
	ID           string   `json:"id"`                     // planId, GUID-shaped
	Name         string   `json:"name"`                   // planName
	AssignableTo []string `json:"assignableTo,omitempty"` // assigneeTypes flags, e.g. ["user", "group"]; empty means "none"
}

// AllotmentState is one allotment as the simulator holds it.
type AllotmentState struct {
	ID            string `json:"id"`
	SKUID         string `json:"skuId"`
	SKUPartNumber string `json:"skuPartNumber,omitempty"` // empty in a Tenant given to New: filled from the SKU
	AllottedUnits int32  `json:"allottedUnits"`
	// ConsumedUnits is an output: the number of distinct users and devices
	// holding a seat, derived from the assignments. A value given to New
	// is ignored.
	ConsumedUnits int32    `json:"consumedUnits"`
	AssignableTo  []string `json:"assignableTo,omitempty"` // assigneeTypes flags; empty means "none"
	// Services are the plans this allotment offers. Nil in a Tenant given
	// to New means all of the SKU's plans; otherwise each must be one of
	// the SKU's plans.
	Services      []Plan         `json:"services,omitempty"`
	Subscriptions []Subscription `json:"subscriptions,omitempty"`
}

// Subscription is a commerce subscription backing an allotment.
type Subscription struct {
	SubscriptionID    string   `json:"subscriptionId"`
	State             string   `json:"state"`             // active, warning, suspended, lockedOut, deleted
	StartDate         string   `json:"startDate"`         // YYYY-MM-DD
	NextLifecycleDate string   `json:"nextLifecycleDate"` // YYYY-MM-DD
	Tags              []string `json:"tags,omitempty"`
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

// DemoTenant returns a small, deterministic organisation: thirty users in
// five departments (one user has none, one account is disabled), three
// groups, two devices and four allotments of three SKUs. ENTERPRISEPACK
// (Office 365 E3) was bought in two batches, the first backed by two
// subscriptions, and one user holds a seat in both; Teams_Ess is a trial
// assigned to the Engineering group, which has more members than seats,
// so the allotment is full and two engineers wait; the EXCHANGESTANDARD
// subscription has expired and is in its grace period (state "warning").
// A plan rule (TeamsEss needs EXCHANGE_S_ENTERPRISE) gives the one
// engineer without E3 an assignment error. Every call returns a fresh
// value.
func DemoTenant() Tenant {
	userGroup := []string{"user", "group"}
	e3 := SKU{ID: "6fd2c87f-b296-42f0-b197-1e91e994b900", PartNumber: "ENTERPRISEPACK", Plans: []Plan{
		{ID: demoE3Exchange, Name: "EXCHANGE_S_ENTERPRISE", AssignableTo: userGroup},
		{ID: "5dbe027f-2339-4123-9542-606e4d348a72", Name: "SHAREPOINTENTERPRISE", AssignableTo: userGroup},
		{ID: "43de0ff5-c92c-492b-9116-175376d08c38", Name: "OFFICESUBSCRIPTION", AssignableTo: userGroup},
		{ID: "0feaeb32-d00e-4d66-bd5a-43b5b83db82c", Name: "MCOSTANDARD", AssignableTo: userGroup},
		{ID: "57ff2da0-773e-42df-b2af-ffb7a2317929", Name: "TEAMS1", AssignableTo: userGroup},
		{ID: "2789c901-c14e-48ab-a76a-be334d9d793a", Name: "FORMS_PLAN_E3", AssignableTo: userGroup},
		{ID: "c87f142c-d1e9-4363-8630-aaea9c4d9ae5", Name: "BPOS_S_TODO_2", AssignableTo: userGroup},
		{ID: "882e1d05-acd1-4ccb-8708-6ee03664b117", Name: "INTUNE_O365"},
	}}
	teams := SKU{ID: "f245ecc8-75af-4f8e-b61f-27d8114de5f3", PartNumber: "Teams_Ess", Plans: []Plan{
		{ID: demoTeamsEss, Name: "TeamsEss", AssignableTo: userGroup},
	}}
	exchange := SKU{ID: "4b9405b0-7788-4568-add1-99614e613b69", PartNumber: "EXCHANGESTANDARD", Plans: []Plan{
		{ID: demoExchangeStandard, Name: "EXCHANGE_S_STANDARD", AssignableTo: userGroup},
		{ID: "6f23d6a9-adbf-481c-8538-b4c095654487", Name: "M365_LIGHTHOUSE_CUSTOMER_PLAN1"},
		{ID: "882e1d05-acd1-4ccb-8708-6ee03664b117", Name: "INTUNE_O365"},
		{ID: "5e62787c-c316-451f-b873-1d05acd4d12c", Name: "BPOS_S_TODO_1", AssignableTo: userGroup},
	}}
	const (
		e3Batch1   = "3b0c7e52-11d4-8a6f-02e9-6c5d8f1a4b70"
		e3Batch2   = "8e4d2a19-7c33-5b0e-91fa-0d6b3e27c845"
		teamsTrial = "c52f9b07-4e81-2d6a-b3c0-71e8a5d9f326"
		exchStd    = "f0a61d3c-29b7-6e45-8d12-b9c4e07a5e81"
		engGroup   = "9d1e4b7a-3c2f-4e8d-a6b5-0c1d2e3f4a01"
		salesGroup = "9d1e4b7a-3c2f-4e8d-a6b5-0c1d2e3f4a02"
		kiosks     = "9d1e4b7a-3c2f-4e8d-a6b5-0c1d2e3f4a03"
	)
	t := Tenant{
		ID:   demoTenantID,
		Apps: []App{DemoApp()},
		SKUs: []SKU{e3, teams, exchange},
		Allotments: []AllotmentState{
			{
				ID: e3Batch1, SKUID: e3.ID, AllottedUnits: 20, AssignableTo: userGroup,
				Subscriptions: []Subscription{
					{SubscriptionID: "d3e8a1f2-6b4c-4e09-a7d5-1c2b3e4f5a60", State: "active", StartDate: "2025-07-01", NextLifecycleDate: "2026-06-30"},
					{SubscriptionID: "e9b1c4d7-2a5f-4c8e-b6d3-0f1e2d3c4b5a", State: "active", StartDate: "2026-01-15", NextLifecycleDate: "2027-01-14"},
				},
			},
			{
				ID: e3Batch2, SKUID: e3.ID, AllottedUnits: 10, AssignableTo: userGroup,
				Subscriptions: []Subscription{
					{SubscriptionID: "a7c2e5f8-3d6b-4a91-8e4c-5b6a7d8e9f01", State: "active", StartDate: "2026-09-01", NextLifecycleDate: "2027-08-31"},
				},
			},
			{
				ID: teamsTrial, SKUID: teams.ID, AllottedUnits: 6, AssignableTo: userGroup,
				Subscriptions: []Subscription{
					{SubscriptionID: "b4d6f8a0-1c3e-4f57-9a2b-6c7d8e9f0a12", State: "active", StartDate: "2026-10-20", NextLifecycleDate: "2026-11-19", Tags: []string{"trial"}},
				},
			},
			{
				ID: exchStd, SKUID: exchange.ID, AllottedUnits: 8, AssignableTo: userGroup,
				Subscriptions: []Subscription{
					{SubscriptionID: "c1e3a5b7-9d2f-4b68-8c0a-7d8e9f0a1b23", State: "warning", StartDate: "2025-09-30", NextLifecycleDate: "2026-12-29"},
				},
			},
		},
		Devices: []DeviceState{
			{ID: "4c0f9e1d-8b7a-4a69-b5c4-d3e2f1a0b901", DisplayName: "KIOSK-LOBBY-01"},
			{ID: "4c0f9e1d-8b7a-4a69-b5c4-d3e2f1a0b902", DisplayName: "KIOSK-LOBBY-02"},
		},
		PlanRules: []PlanRule{
			{Kind: RuleDependency, PlanID: demoTeamsEss, OtherPlanID: demoE3Exchange},
			{Kind: RuleMutualExclusion, PlanID: demoE3Exchange, OtherPlanID: demoExchangeStandard},
		},
	}
	people := []struct{ first, last, dept, cost string }{
		{"Ada", "Lindqvist", "Engineering", "CC-100"}, {"Bruno", "Okafor", "Engineering", "CC-100"},
		{"Chiara", "Rossi", "Engineering", "CC-100"}, {"Dmitri", "Volkov", "Engineering", "CC-100"},
		{"Emeka", "Nwosu", "Engineering", "CC-100"}, {"Fatima", "Haddad", "Engineering", "CC-100"},
		{"Gustav", "Berg", "Engineering", "CC-100"}, {"Hana", "Sato", "Sales", "CC-200"},
		{"Ivan", "Petrov", "Sales", "CC-200"}, {"Julia", "Meyer", "Sales", "CC-200"},
		{"Kofi", "Mensah", "Sales", "CC-200"}, {"Lena", "Fischer", "Sales", "CC-200"},
		{"Mateo", "Garcia", "Sales", "CC-200"}, {"Nadia", "Karim", "Finance", "CC-300"},
		{"Oskar", "Nowak", "Finance", "CC-300"}, {"Priya", "Raman", "Finance", "CC-300"},
		{"Quentin", "Moreau", "Finance", "CC-300"}, {"Rosa", "Silva", "Finance", "CC-300"},
		{"Sven", "Olsen", "HR", "CC-400"}, {"Tala", "Aziz", "HR", "CC-400"},
		{"Umar", "Sheikh", "HR", "CC-400"}, {"Vera", "Horvat", "Marketing", "CC-500"},
		{"Wen", "Li", "Engineering", "CC-100"}, {"Xavier", "Dubois", "Marketing", "CC-500"},
		{"Yara", "Costa", "Marketing", "CC-500"}, {"Zoe", "Walsh", "Marketing", "CC-500"},
		{"Anil", "Gupta", "Marketing", "CC-500"}, {"Bea", "Novak", "Marketing", "CC-500"},
		{"Cem", "Yilmaz", "", ""}, {"Dana", "Kovac", "Sales", "CC-200"},
	}
	uid := func(n int) string { return fmt.Sprintf("5a0e%04x-7c21-4d3b-9f10-2b6c8d4e%04x", n, n) }
	for i, p := range people {
		n := i + 1
		t.Users = append(t.Users, UserState{
			ID: uid(n), UserPrincipalName: strings.ToLower(p.first+"."+p.last) + "@contoso.example",
			DisplayName: p.first + " " + p.last, Department: p.dept, CompanyName: "Contoso", CostCenter: p.cost,
			AccountEnabled: n != 30, // Dana left; her account is disabled but keeps its licence
		})
	}
	eng := GroupState{ID: engGroup, DisplayName: "Engineering"}
	for _, n := range []int{1, 2, 3, 4, 5, 6, 7, 23} {
		eng.Members = append(eng.Members, uid(n))
	}
	sales := GroupState{ID: salesGroup, DisplayName: "Sales"}
	for _, n := range []int{8, 9, 10, 11, 12, 13, 30} {
		sales.Members = append(sales.Members, uid(n))
	}
	t.Groups = []GroupState{eng, sales, {ID: kiosks, DisplayName: "Lobby kiosks", Members: []string{t.Devices[0].ID, t.Devices[1].ID}}}
	asg := func(n int, allotment, to string, disabled ...string) {
		t.Assignments = append(t.Assignments, AssignmentState{
			ID: fmt.Sprintf("a55e%04x-1d2c-4b3a-8f9e-7d6c5b4a%04x", n, n), AllotmentID: allotment, AssignedToID: to,
			DisabledServicePlanIDs: disabled,
		})
	}
	n := 0
	for u := 1; u <= 18; u++ {
		n++
		asg(n, e3Batch1, uid(u))
	}
	for _, u := range []int{1, 19, 20, 21, 22, 29, 30} { // Ada holds a seat in both E3 allotments
		n++
		asg(n, e3Batch2, uid(u))
	}
	for u := 23; u <= 28; u++ {
		n++
		if u == 25 {
			asg(n, exchStd, uid(u), "5e62787c-c316-451f-b873-1d05acd4d12c") // To Do switched off
			continue
		}
		asg(n, exchStd, uid(u))
	}
	n++
	asg(n, teamsTrial, engGroup)
	waitSince := func(s string) time.Time { tm, _ := time.Parse(time.RFC3339, s); return tm }
	t.WaitingMembers = []WaitingMemberState{
		{ID: "3e7a1c00-5b2d-4f6e-9a8b-7c6d5e4f3a01", AllotmentID: teamsTrial, MemberID: uid(6), Since: waitSince("2026-11-10T09:00:00Z")},
		{ID: "3e7a1c00-5b2d-4f6e-9a8b-7c6d5e4f3a02", AllotmentID: teamsTrial, MemberID: uid(7), Since: waitSince("2026-11-12T14:30:00Z")},
	}
	return t
}

const (
	demoE3Exchange       = "efb87545-963c-4e0d-99df-69c6916d9eb0"
	demoExchangeStandard = "9aaf7827-d63c-4b61-89c3-182f06f82e5c"
	demoTeamsEss         = "f4f2f6de-6830-442b-a433-e92249faebe2"
)

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
	out.Users = slices.Clone(t.Users)
	out.Devices = slices.Clone(t.Devices)
	for _, g := range t.Groups {
		g.Members = slices.Clone(g.Members)
		out.Groups = append(out.Groups, g)
	}
	for _, a := range t.Assignments {
		a.DisabledServicePlanIDs = slices.Clone(a.DisabledServicePlanIDs)
		out.Assignments = append(out.Assignments, a)
	}
	out.WaitingMembers = slices.Clone(t.WaitingMembers)
	out.AssignmentErrors = slices.Clone(t.AssignmentErrors)
	out.PlanRules = slices.Clone(t.PlanRules)
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
	if a.AllottedUnits < 0 {
		return errors.New("units must not be negative")
	}
	a.ConsumedUnits = 0 // derived from the assignments
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
