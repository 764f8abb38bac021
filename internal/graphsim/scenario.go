package graphsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
)

// LoadScenario reads a tenant from a JSON scenario file: the Tenant
// struct's JSON form (docs/graph-simulator.md describes it; /_sim/state
// writes it). Unknown fields are an error, so a typo does not pass
// silently. New validates the tenant further.
func LoadScenario(r io.Reader) (Tenant, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var t Tenant
	if err := dec.Decode(&t); err != nil {
		return Tenant{}, fmt.Errorf("decode scenario: %w", err)
	}
	if dec.More() {
		return Tenant{}, fmt.Errorf("decode scenario: more than one JSON value")
	}
	return t, nil
}

// UnmarshalJSON decodes a user strictly; accountEnabled defaults to true
// when absent.
func (u *UserState) UnmarshalJSON(b []byte) error {
	type plain UserState
	p := plain{AccountEnabled: true}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("decode user: %w", err)
	}
	*u = UserState(p)
	return nil
}

// GenerateOptions sizes a generated tenant. Zero values take the
// defaults noted.
type GenerateOptions struct {
	Seed int64
	// Users is the number of users (default 100).
	Users int
	// Allotments is the number of regular allotments, cycling through
	// ENTERPRISEPACK, Teams_Ess and EXCHANGESTANDARD (default 4). The
	// waiting-room and error scenarios below add their own.
	Allotments int
	// AssignmentsPerUser is how many regular allotments each user is
	// directly assigned (default 1, at most Allotments): users ×
	// AssignmentsPerUser assignments.
	AssignmentsPerUser int
	// Groups is the number of unlicensed groups, each with GroupSize
	// members picked at random (default size 25).
	Groups, GroupSize int
	// Devices is the number of devices.
	Devices int
	// WaitingMembers adds a licensed group whose allotment is full, with
	// this many members waiting.
	WaitingMembers int
	// AssignmentErrors adds an add-on allotment assigned to this many
	// users, whose plan depends on a plan none of them has, so each gets
	// a MissingDependency error.
	AssignmentErrors int
	// Headroom is the share of free seats regular allotments keep
	// (default 0.1).
	Headroom float64
}

var generatedDepartments = []string{"Engineering", "Sales", "Finance", "HR", "Marketing", "Operations", "Legal", "Support"}

// Generate builds a tenant deterministically from opts: the same options
// give the same tenant. It is fast enough for benchmarks (100,000 users
// in well under a second).
func Generate(opts GenerateOptions) Tenant {
	if opts.Users <= 0 {
		opts.Users = 100
	}
	if opts.Allotments <= 0 {
		opts.Allotments = 4
	}
	if opts.AssignmentsPerUser <= 0 {
		opts.AssignmentsPerUser = 1
	}
	opts.AssignmentsPerUser = min(opts.AssignmentsPerUser, opts.Allotments)
	if opts.GroupSize <= 0 {
		opts.GroupSize = 25
	}
	if opts.Headroom <= 0 {
		opts.Headroom = 0.1
	}
	rng := rand.New(rand.NewPCG(uint64(opts.Seed), 0x67726170687369))
	guid := func() string {
		var b [16]byte
		for i := 0; i < 16; i += 8 {
			v := rng.Uint64()
			for j := range 8 {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		return formatGUID(b[:])
	}
	demo := DemoTenant()
	t := Tenant{ID: demo.ID, Apps: demo.Apps, SKUs: demo.SKUs}
	userGroup := []string{"user", "group"}
	sub := func() []Subscription {
		return []Subscription{{SubscriptionID: guid(), State: "active", StartDate: "2026-01-01", NextLifecycleDate: "2027-01-01"}}
	}

	t.Users = make([]UserState, opts.Users)
	for i := range t.Users {
		d := rng.IntN(len(generatedDepartments) + 1)
		u := UserState{
			ID: guid(), UserPrincipalName: fmt.Sprintf("user%06d@generated.example", i),
			DisplayName: fmt.Sprintf("User %06d", i), CompanyName: "Contoso", AccountEnabled: rng.IntN(40) != 0,
		}
		if d < len(generatedDepartments) {
			u.Department = generatedDepartments[d]
			u.CostCenter = fmt.Sprintf("CC-%d00", d+1)
		}
		t.Users[i] = u
	}
	regular := make([]AllotmentState, opts.Allotments)
	counts := make([]int32, opts.Allotments)
	for j := range regular {
		regular[j] = AllotmentState{ID: guid(), SKUID: demo.SKUs[j%3].ID, AssignableTo: userGroup, Subscriptions: sub()}
	}
	t.Assignments = make([]AssignmentState, 0, opts.Users*opts.AssignmentsPerUser)
	for i, u := range t.Users {
		for m := range opts.AssignmentsPerUser {
			j := (i + m) % opts.Allotments
			counts[j]++
			t.Assignments = append(t.Assignments, AssignmentState{ID: guid(), AllotmentID: regular[j].ID, AssignedToID: u.ID, AssignedToType: typeUser, DisabledServicePlanIDs: []string{}})
		}
	}
	for j := range regular {
		regular[j].AllottedUnits = counts[j] + int32(float64(counts[j])*opts.Headroom) + 1
	}
	t.Allotments = regular
	for i := range opts.Devices {
		t.Devices = append(t.Devices, DeviceState{ID: guid(), DisplayName: fmt.Sprintf("DEVICE-%05d", i)})
	}
	for i := range opts.Groups {
		g := GroupState{ID: guid(), DisplayName: fmt.Sprintf("Group %04d", i)}
		seen := map[int]bool{}
		for len(g.Members) < min(opts.GroupSize, opts.Users) {
			k := rng.IntN(opts.Users)
			if !seen[k] {
				seen[k] = true
				g.Members = append(g.Members, t.Users[k].ID)
			}
		}
		t.Groups = append(t.Groups, g)
	}
	if w := min(opts.WaitingMembers, opts.Users-1); w > 0 {
		seats := min(10, opts.Users-w)
		g := GroupState{ID: guid(), DisplayName: "Licensed: Teams waiting room"}
		for _, u := range t.Users[:seats+w] {
			g.Members = append(g.Members, u.ID)
		}
		a := AllotmentState{ID: guid(), SKUID: demo.SKUs[1].ID, AllottedUnits: int32(seats), AssignableTo: userGroup, Subscriptions: sub()}
		t.Groups = append(t.Groups, g)
		t.Allotments = append(t.Allotments, a)
		t.Assignments = append(t.Assignments, AssignmentState{ID: guid(), AllotmentID: a.ID, AssignedToID: g.ID, AssignedToType: typeGroup, DisabledServicePlanIDs: []string{}})
	}
	if e := min(opts.AssignmentErrors, opts.Users); e > 0 {
		addon := SKU{ID: guid(), PartNumber: "GENERATED_ADDON", Plans: []Plan{{ID: guid(), Name: "ADDON_PLAN", AssignableTo: userGroup}}}
		prereq := SKU{ID: guid(), PartNumber: "GENERATED_PREREQ", Plans: []Plan{{ID: guid(), Name: "PREREQ_PLAN", AssignableTo: userGroup}}}
		t.SKUs = append(t.SKUs, addon, prereq)
		t.PlanRules = append(t.PlanRules, PlanRule{Kind: RuleDependency, PlanID: addon.Plans[0].ID, OtherPlanID: prereq.Plans[0].ID})
		a := AllotmentState{ID: guid(), SKUID: addon.ID, AllottedUnits: int32(e), AssignableTo: userGroup, Subscriptions: sub()}
		p := AllotmentState{ID: guid(), SKUID: prereq.ID, AllottedUnits: int32(e), AssignableTo: userGroup, Subscriptions: sub()}
		t.Allotments = append(t.Allotments, a, p)
		for _, u := range t.Users[opts.Users-e:] {
			t.Assignments = append(t.Assignments, AssignmentState{ID: guid(), AllotmentID: a.ID, AssignedToID: u.ID, AssignedToType: typeUser, DisabledServicePlanIDs: []string{}})
		}
	}
	return t
}
