package graphsim

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// DemoPastDays is the number of days DemoPast replays: the past the
// zero-configuration demo gives its mirror.
const DemoPastDays = 90

// DemoPastHire is the user the demo past hires on its last day, with no
// licence yet: the new hire of the HR onboarding example (docs/api.md).
var DemoPastHire = UserState{
	ID: demoUserID(31), UserPrincipalName: "kai.tanaka@contoso.example", DisplayName: "Kai Tanaka",
	Department: "Engineering", CompanyName: "Contoso", CostCenter: "CC-100", AccountEnabled: true,
}

// demoPastSyncHour and demoPastEventHour are the times of day, UTC, of a
// replayed day's changes and of the sync that records them.
const (
	demoPastEventHour = 8
	demoPastSyncHour  = 18
)

// ErrNotDemoTenant means DemoPast was asked to replay the past of a
// simulator that does not hold the demo tenant as DemoTenant returns it.
var ErrNotDemoTenant = errors.New("the simulator does not hold the demo tenant as it starts")

// SetClock stops the simulator's clock at t: Now returns t (plus what
// AdvanceClock adds later) until ResetClock. Unlike AdvanceClock it may
// go back: the demo's past is replayed by setting the clock to each past
// day in turn, and a stopped clock makes the replay's dates exact. The
// authority's tokens keep Options.Clock (the real time), so tokens issued
// before stay valid. t must be after 1970.
func (s *Server) SetClock(t time.Time) {
	s.offset.Store(0)
	s.pinned.Store(t.UnixNano())
}

// ResetClock puts the simulator's clock back on Options.Clock (the real
// time by default), undoing SetClock and AdvanceClock.
func (s *Server) ResetClock() {
	s.pinned.Store(0)
	s.offset.Store(0)
}

// DemoPast replays a believable past of the demo tenant over the
// DemoPastDays days before end's day, calling sync once a day so that a
// mirror can record each day, and ends on the demo tenant as DemoTenant
// returns it plus DemoPastHire. The simulator must hold the demo tenant as
// New starts it (else ErrNotDemoTenant, with nothing changed), and nothing
// else may change it meanwhile.
//
// First, with the clock set to the first day's midnight, the tenant is
// taken back to its state then (nothing should observe this step). Then,
// for each day D from end's day minus DemoPastDays to the day before end's
// day: the clock is set to D 08:00 UTC, that day's changes are made
// through the exported mutators (so seats, waiting members and errors
// follow from Graph's rules, dated by the clock), the clock is set to D
// 18:00 UTC and sync(D 18:00) is called; an error from sync stops the
// replay and is returned. Whatever happens, the clock is reset at the end
// (ResetClock). The same end day gives the same past.
//
// The story, by day (1 is the first, 90 the day before end):
//   - 1: the first sync sees 32 users: Liam Brennan (Sales) and Mira Jensen
//     (Finance), who will leave, are there; Umar Sheikh, Vera Horvat and
//     Bea Novak are not hired yet; Chiara Rossi works in Sales, Priya
//     Raman and Cem Yilmaz in Marketing. The Engineering group has four
//     members and the Teams trial 4 seats, all held; E3 batch 2 has 8 units.
//   - 7: Yara Costa's To Do plan is switched off.
//   - 13: Liam Brennan leaves: his account, E3 seat and group membership go.
//   - 21: Umar Sheikh (HR) is hired with an E3 seat from batch 2.
//   - 25: Chiara Rossi moves to Engineering and joins its group: the Teams
//     trial is full, she waits.
//   - 30: the Teams trial grows to 6 seats: Chiara gets hers.
//   - 34: Priya Raman moves from Marketing to Finance.
//   - 39: Yara Costa joins the Engineering group for a pilot: her Teams seat
//     lacks E3's Exchange, a MissingDependency error appears.
//   - 42: Vera Horvat (Marketing) is hired with an E3 seat from batch 2,
//     which is then full; 46: batch 2 grows to 10 units.
//   - 48: Yara leaves the group: her seat and her error go.
//   - 53: Wen Li joins the Engineering group: her MissingDependency error
//     stays to this day.
//   - 58: E3 batch 1's second subscription is suspended (payment); 64: it is
//     active again.
//   - 62: Cem Yilmaz's department is cleared.
//   - 68: Bea Novak (Marketing) is hired with Exchange Online.
//   - 71: Mira Jensen leaves.
//   - 75, 78: Fatima Haddad and Gustav Berg join the Engineering group and
//     wait for Teams.
//   - 81: the Exchange subscription expires (state warning, grace period).
//   - 85: Dana Kovac leaves: her account is disabled, her licence kept.
//   - 90: Kai Tanaka (DemoPastHire) is hired, without a licence yet.
func (s *Server) DemoPast(end time.Time, sync func(at time.Time) error) (err error) {
	if err := s.checkDemoTenant(); err != nil {
		return err
	}
	defer s.ResetClock()
	today := end.UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, -DemoPastDays)
	s.SetClock(first)
	p, err := s.rewindDemo()
	if err != nil {
		return fmt.Errorf("demo past: take the tenant back %d days: %w", DemoPastDays, err)
	}
	for day := 1; day <= DemoPastDays; day++ {
		date := first.AddDate(0, 0, day-1)
		s.SetClock(date.Add(demoPastEventHour * time.Hour))
		if err := p.changes(s, day); err != nil {
			return fmt.Errorf("demo past: day %d (%s): %w", day, date.Format(time.DateOnly), err)
		}
		at := date.Add(demoPastSyncHour * time.Hour)
		s.SetClock(at)
		if err := sync(at); err != nil {
			return err
		}
	}
	return nil
}

// demoUserID is the id of the demo tenant's user n.
func demoUserID(n int) string { return fmt.Sprintf("5a0e%04x-7c21-4d3b-9f10-2b6c8d4e%04x", n, n) }

// Ids of the demo tenant that the past changes.
const (
	demoE3Batch1   = "3b0c7e52-11d4-8a6f-02e9-6c5d8f1a4b70"
	demoE3Batch2   = "8e4d2a19-7c33-5b0e-91fa-0d6b3e27c845"
	demoTeamsTrial = "c52f9b07-4e81-2d6a-b3c0-71e8a5d9f326"
	demoExchStd    = "f0a61d3c-29b7-6e45-8d12-b9c4e07a5e81"
	demoEngGroup   = "9d1e4b7a-3c2f-4e8d-a6b5-0c1d2e3f4a01"
	demoSalesGroup = "9d1e4b7a-3c2f-4e8d-a6b5-0c1d2e3f4a02"
	demoE3Sub2     = "e9b1c4d7-2a5f-4c8e-b6d3-0f1e2d3c4b5a"
	demoExchSub    = "c1e3a5b7-9d2f-4b68-8c0a-7d8e9f0a1b23"
	demoToDo       = "5e62787c-c316-451f-b873-1d05acd4d12c" // BPOS_S_TODO_1
)

// Users of the demo tenant the past changes, by number.
const (
	demoChiara = 3
	demoFatima = 6
	demoGustav = 7
	demoPriya  = 16
	demoUmar   = 21
	demoVera   = 22
	demoWen    = 23
	demoYara   = 25
	demoBea    = 28
	demoCem    = 29
	demoDana   = 30
)

// The leavers: in the tenant on the first day, gone before the last.
var (
	demoLiam = UserState{ID: demoUserID(0xf1), UserPrincipalName: "liam.brennan@contoso.example", DisplayName: "Liam Brennan",
		Department: "Sales", CompanyName: "Contoso", CostCenter: "CC-200", AccountEnabled: true}
	demoMira = UserState{ID: demoUserID(0xf2), UserPrincipalName: "mira.jensen@contoso.example", DisplayName: "Mira Jensen",
		Department: "Finance", CompanyName: "Contoso", CostCenter: "CC-300", AccountEnabled: true}
)

// demoPastState is what the replay needs to bring back: the hires as the
// demo tenant has them.
type demoPastState struct {
	users       map[string]UserState       // the demo tenant's users, by id
	assignments map[string]AssignmentState // the hires' assignments, by user id
	yaraExch    string                     // Yara Costa's Exchange assignment
}

// checkDemoTenant refuses a simulator that does not hold the demo tenant
// as New starts it: the replay's changes would not apply (or would tell
// another story).
func (s *Server) checkDemoTenant() error {
	t := DemoTenant()
	got := s.Snapshot()
	ids := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		slices.Sort(out)
		return out
	}
	same := got.ID == t.ID &&
		slices.Equal(ids(len(got.Users), func(i int) string { return got.Users[i].ID }), ids(len(t.Users), func(i int) string { return t.Users[i].ID })) &&
		slices.Equal(ids(len(got.Assignments), func(i int) string { return got.Assignments[i].ID }), ids(len(t.Assignments), func(i int) string { return t.Assignments[i].ID }))
	if !same {
		return ErrNotDemoTenant
	}
	return nil
}

// rewindDemo takes the demo tenant back to the first day of its past.
func (s *Server) rewindDemo() (*demoPastState, error) {
	p := &demoPastState{users: map[string]UserState{}, assignments: map[string]AssignmentState{}}
	for _, u := range s.Users() {
		p.users[u.ID] = u
	}
	for _, a := range s.Assignments() {
		switch a.AssignedToID {
		case demoUserID(demoUmar), demoUserID(demoVera), demoUserID(demoBea):
			p.assignments[a.AssignedToID] = a
		case demoUserID(demoYara):
			p.yaraExch = a.ID
		}
	}
	if len(p.assignments) != 3 || p.yaraExch == "" {
		return nil, ErrNotDemoTenant
	}
	steps := []func() error{
		// Not hired yet.
		func() error { return s.RemoveUser(demoUserID(demoUmar)) },
		func() error { return s.RemoveUser(demoUserID(demoVera)) },
		func() error { return s.RemoveUser(demoUserID(demoBea)) },
		// Not in the Engineering group yet (the waiting ones first, so
		// that nobody takes a seat on the way).
		func() error { return s.RemoveGroupMember(demoEngGroup, demoUserID(demoFatima)) },
		func() error { return s.RemoveGroupMember(demoEngGroup, demoUserID(demoGustav)) },
		func() error { return s.RemoveGroupMember(demoEngGroup, demoUserID(demoChiara)) },
		func() error { return s.RemoveGroupMember(demoEngGroup, demoUserID(demoWen)) },
		func() error { return s.SetAllottedUnits(demoTeamsTrial, 4) },
		func() error { return s.SetAllottedUnits(demoE3Batch2, 8) },
		// Departments before the moves.
		func() error { return s.SetDepartment(demoUserID(demoChiara), "Sales") },
		func() error { return s.SetDepartment(demoUserID(demoPriya), "Marketing") },
		func() error { return s.SetDepartment(demoUserID(demoCem), "Marketing") },
		func() error {
			d := p.users[demoUserID(demoDana)]
			d.AccountEnabled = true
			return s.UpdateUser(d)
		},
		func() error { _, err := s.UpdateAssignment(p.yaraExch, nil); return err },
		func() error { return s.SetSubscriptionState(demoExchStd, demoExchSub, "active") },
		// The leavers are still there.
		func() error { return s.hireDemo(demoLiam, demoE3Batch1, "a55e00f1-1d2c-4b3a-8f9e-7d6c5b4a00f1") },
		func() error { return s.AddGroupMember(demoSalesGroup, demoLiam.ID) },
		func() error { return s.hireDemo(demoMira, demoE3Batch2, "a55e00f2-1d2c-4b3a-8f9e-7d6c5b4a00f2") },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// hireDemo adds a user with one direct assignment.
func (s *Server) hireDemo(u UserState, allotment, assignmentID string) error {
	if err := s.AddUser(u); err != nil {
		return err
	}
	_, err := s.Assign(AssignmentState{ID: assignmentID, AllotmentID: allotment, AssignedToID: u.ID, AssignedToType: typeUser})
	return err
}

// rehire brings back a hire of the demo tenant as DemoTenant has them.
func (p *demoPastState) rehire(s *Server, n int) error {
	id := demoUserID(n)
	if err := s.AddUser(p.users[id]); err != nil {
		return err
	}
	a := p.assignments[id]
	_, err := s.Assign(AssignmentState{ID: a.ID, AllotmentID: a.AllotmentID, AssignedToID: id, AssignedToType: typeUser,
		DisabledServicePlanIDs: a.DisabledServicePlanIDs})
	return err
}

// changes makes day's changes (1 is the first day).
func (p *demoPastState) changes(s *Server, day int) error {
	switch day {
	case 7:
		_, err := s.UpdateAssignment(p.yaraExch, []string{demoToDo})
		return err
	case 13:
		return s.RemoveUser(demoLiam.ID)
	case 21:
		return p.rehire(s, demoUmar)
	case 25:
		if err := s.SetDepartment(demoUserID(demoChiara), "Engineering"); err != nil {
			return err
		}
		return s.AddGroupMember(demoEngGroup, demoUserID(demoChiara))
	case 30:
		return s.SetAllottedUnits(demoTeamsTrial, 6)
	case 34:
		return s.SetDepartment(demoUserID(demoPriya), "Finance")
	case 39:
		return s.AddGroupMember(demoEngGroup, demoUserID(demoYara))
	case 42:
		return p.rehire(s, demoVera)
	case 46:
		return s.SetAllottedUnits(demoE3Batch2, 10)
	case 48:
		return s.RemoveGroupMember(demoEngGroup, demoUserID(demoYara))
	case 53:
		return s.AddGroupMember(demoEngGroup, demoUserID(demoWen))
	case 58:
		return s.SetSubscriptionState(demoE3Batch1, demoE3Sub2, "suspended")
	case 62:
		return s.SetDepartment(demoUserID(demoCem), "")
	case 64:
		return s.SetSubscriptionState(demoE3Batch1, demoE3Sub2, "active")
	case 68:
		return p.rehire(s, demoBea)
	case 71:
		return s.RemoveUser(demoMira.ID)
	case 75:
		return s.AddGroupMember(demoEngGroup, demoUserID(demoFatima))
	case 78:
		return s.AddGroupMember(demoEngGroup, demoUserID(demoGustav))
	case 81:
		return s.SetSubscriptionState(demoExchStd, demoExchSub, "warning")
	case 85:
		return s.UpdateUser(p.users[demoUserID(demoDana)])
	case 90:
		return s.AddUser(DemoPastHire)
	}
	return nil
}
