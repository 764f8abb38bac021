package licensing

import (
	"errors"
	"strings"
	"testing"
)

func al(id string, allotted, consumed int32) Allotment {
	return Allotment{ID: id, SKUID: "sku-e3", SKUPartNumber: "E3", AllottedUnits: allotted, ConsumedUnits: consumed,
		AssignableTo: []string{KindUser, KindGroup}}
}

func owned(a Allotment, dept string) Allotment { a.Owner = dept; return a }

func TestFreeSeats(t *testing.T) {
	t.Parallel()
	tests := []struct{ allotted, consumed, want int32 }{
		{10, 3, 7}, {10, 10, 0}, {0, 0, 0},
		{5, 8, 0}, // over-assigned during a capacity cut: none free, never negative
	}
	for _, tt := range tests {
		if got := FreeSeats(tt.allotted, tt.consumed); got != tt.want {
			t.Errorf("FreeSeats(%d, %d) = %d, want %d", tt.allotted, tt.consumed, got, tt.want)
		}
		if got := al("a", tt.allotted, tt.consumed).Free(); got != tt.want {
			t.Errorf("Allotment{%d allotted, %d consumed}.Free() = %d, want %d", tt.allotted, tt.consumed, got, tt.want)
		}
	}
}

func TestNeedsFreeSeat(t *testing.T) {
	t.Parallel()
	for kind, want := range map[string]bool{KindUser: true, KindDevice: true, KindGroup: false} {
		if got := NeedsFreeSeat(kind); got != want {
			t.Errorf("NeedsFreeSeat(%s) = %v, want %v", kind, got, want)
		}
	}
}

func TestChoose(t *testing.T) {
	t.Parallel()
	sales := Assignee{Kind: KindUser, ID: "u1", Department: "Sales"}
	nodept := Assignee{Kind: KindUser, ID: "u2"}
	group := Assignee{Kind: KindGroup, ID: "g1"}
	device := Assignee{Kind: KindDevice, ID: "d1"}
	salesGroup := Assignee{Kind: KindGroup, ID: "g2", Department: "Sales"} // only a user's department counts
	tests := []struct {
		name   string
		who    Assignee
		usable []Allotment
		want   string
		reason Reason
		detail string
		full   []string // a NoFreeSeatError listing these, in this order
	}{
		{"owner department first", sales, []Allotment{al("big", 50, 0), owned(al("s", 5, 4), "Sales")},
			"s", ReasonOwnerDepartment, "allotment s of E3 is owned by Sales, the user's department, and had 1 free licences", nil},
		{"owned but full: most free", sales, []Allotment{al("big", 50, 0), owned(al("s", 5, 5), "Sales")},
			"big", ReasonMostAvailable, "1 of 2 allotments of E3 had free licences; this one had the most (50)", nil},
		{"another department's: most free", sales, []Allotment{al("big", 50, 0), owned(al("s", 5, 0), "Legal")},
			"big", ReasonMostAvailable, "2 of 2 allotments of E3 had free licences; this one had the most (50)", nil},
		{"no department: most free, ties by id", nodept, []Allotment{al("b", 10, 0), al("a", 10, 0), al("c", 5, 0)},
			"a", ReasonMostAvailable, "3 of 3 allotments of E3 had free licences; this one had the most (10)", nil},
		{"a group's department is not asked", salesGroup, []Allotment{al("big", 50, 0), owned(al("s", 5, 0), "Sales")},
			"big", ReasonMostAvailable, "2 of 2 allotments of E3 had free licences; this one had the most (50)", nil},
		{"only candidate", nodept, []Allotment{al("a", 2, 1)},
			"a", ReasonOnlyCandidate, "allotment a is the only allotment of E3 assignable to a user; it had 1 free licences", nil},
		{"all full", nodept, []Allotment{al("b", 1, 3), al("a", 2, 2)}, "", 0, "", []string{"a", "b"}},
		{"a device needs a free seat", device, []Allotment{al("a", 2, 2)}, "", 0, "", []string{"a"}},
		{"a group with every seat taken: the shortest waiting room", group,
			[]Allotment{waiting(al("a", 2, 2), 3), waiting(al("b", 1, 1), 1), waiting(al("c", 5, 6), 1)},
			"b", ReasonShortestWaitingRoom, "none of the 3 allotments of E3 had a free licence; this one had the shortest waiting room (1 waiting)", nil},
		{"groups need no free seat", group, []Allotment{al("a", 2, 2)},
			"a", ReasonOnlyCandidate, "allotment a is the only allotment of E3 assignable to a group; it had 0 free licences", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Choose(tt.who, tt.usable)
			if tt.full != nil {
				var nf *NoFreeSeatError
				if !errors.As(err, &nf) {
					t.Fatalf("Choose = %v, %v; want a NoFreeSeatError", c, err)
				}
				var ids []string
				for _, a := range nf.Full {
					ids = append(ids, a.ID)
				}
				if strings.Join(ids, ",") != strings.Join(tt.full, ",") {
					t.Errorf("refusal lists %v, want %v", ids, tt.full)
				}
				return
			}
			if err != nil {
				t.Fatalf("Choose: %v", err)
			}
			if c.Allotment.ID != tt.want || c.Reason != tt.reason || c.Detail != tt.detail {
				t.Errorf("chose %s (%v, %q), want %s (%v, %q)", c.Allotment.ID, c.Reason, c.Detail, tt.want, tt.reason, tt.detail)
			}
		})
	}
}

func TestChooseLeavesTheCallersOrder(t *testing.T) {
	t.Parallel()
	usable := []Allotment{al("small", 2, 0), al("big", 9, 0)}
	if _, err := Choose(Assignee{Kind: KindUser}, usable); err != nil {
		t.Fatal(err)
	}
	if usable[0].ID != "small" {
		t.Errorf("Choose reordered its argument: %v", usable)
	}
}

func TestRequested(t *testing.T) {
	t.Parallel()
	user := Assignee{Kind: KindUser, ID: "u1"}
	c, err := Requested(user, al("a", 3, 1))
	if err != nil || c.Allotment.ID != "a" || c.Reason != ReasonRequested || c.Detail != "allotment a was requested; it had 2 free licences" {
		t.Errorf("Requested(free) = %+v, %v", c, err)
	}
	if c, err := Requested(Assignee{Kind: KindGroup}, al("a", 3, 3)); err != nil || c.Reason != ReasonRequested {
		t.Errorf("Requested(full, group) = %+v, %v; want the allotment: members wait in its waiting room", c, err)
	}
	_, err = Requested(user, al("a", 3, 3))
	var nf *NoFreeSeatError
	if !errors.As(err, &nf) || !nf.Named {
		t.Fatalf("Requested(full) = %v, want a named NoFreeSeatError", err)
	}
	if want := "allotment a (E3) has no free licence (3 of 3 in use); no other allotment of this SKU has a free licence"; err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
	nf.Elsewhere = []Allotment{al("a", 3, 3), al("b", 5, 1), al("c", 1, 4), al("d", 2, 0)}
	if want := "allotment a (E3) has no free licence (3 of 3 in use); other allotments of this SKU: allotments/b has 4 free, allotments/d has 2 free"; err.Error() != want {
		t.Errorf("message = %q, want %q", err, want)
	}
}

func TestPreChecks(t *testing.T) {
	t.Parallel()
	dev := Assignee{Field: "device_id", Kind: KindDevice, ID: "d1"}
	user := Assignee{Field: "user", Kind: KindUser, ID: "u1", UserPrincipalName: "ada@contoso.example"}
	all := []Allotment{al("a", 5, 0), {ID: "dev", SKUID: "sku-e3", SKUPartNumber: "E3", AssignableTo: []string{KindDevice}}}

	usable, err := Usable(user, all, false)
	if err != nil || len(usable) != 1 || usable[0].ID != "a" {
		t.Errorf("Usable(user) = %v, %v; want [a]", usable, err)
	}
	tests := []struct {
		name  string
		named bool
		all   []Allotment
		want  string
	}{
		{"named", true, all[:1], "allotment a cannot be assigned to a device (assignable to: user, group)"},
		{"by SKU", false, all[:1], "no allotment of SKU E3 (sku-e3) cannot be assigned to a device (assignable to: user, group)"},
	}
	for _, tt := range tests {
		_, err := Usable(dev, tt.all, tt.named)
		var na *NotAssignableError
		if !errors.As(err, &na) || na.Assignee.Field != "device_id" || err.Error() != tt.want {
			t.Errorf("%s: Usable(device) = %v; want a NotAssignableError %q", tt.name, err, tt.want)
		}
	}

	e3 := al("a", 5, 0)
	e3.Services = []Service{{PlanID: "AAAA-1", PlanName: "TEAMS1"}, {PlanID: "bbbb-2", PlanName: "EXCHANGE_S_ENTERPRISE"}}
	if err := CheckPlan(e3, "aaaa-1"); err != nil {
		t.Errorf("CheckPlan(a plan of the SKU, other case) = %v", err)
	}
	err = CheckPlan(e3, "cccc-3")
	if want := "service plan cccc-3 is not a service of E3; its plans are: AAAA-1 (TEAMS1), bbbb-2 (EXCHANGE_S_ENTERPRISE)"; err == nil || err.Error() != want {
		t.Errorf("CheckPlan(unknown) = %v, want %q", err, want)
	}

	if err := CheckNotHeld(user, []Allotment{e3}, []Held{{AssignmentID: "x", AllotmentID: "other"}}); err != nil {
		t.Errorf("CheckNotHeld(a seat of another allotment) = %v", err)
	}
	err = CheckNotHeld(user, []Allotment{e3}, []Held{{AssignmentID: "x", AllotmentID: "other"}, {AssignmentID: "y", AllotmentID: "a"}})
	var aa *AlreadyAssignedError
	if !errors.As(err, &aa) || aa.Held.AssignmentID != "y" ||
		err.Error() != "user ada@contoso.example already holds assignment y from allotment a; nothing was assigned" {
		t.Errorf("CheckNotHeld(held) = %v", err)
	}
	err = CheckNotHeld(Assignee{Kind: KindGroup, ID: "g1"}, []Allotment{e3}, []Held{{AssignmentID: "y", AllotmentID: "a"}})
	if err == nil || !strings.HasPrefix(err.Error(), "group g1 already holds") {
		t.Errorf("CheckNotHeld(group) = %v, want it named as group g1", err)
	}
}

// waiting returns a with n members in its waiting room.
func waiting(a Allotment, n int32) Allotment {
	a.WaitingMembers = n
	return a
}
