// Package licensing holds the rules of Microsoft 365 Cloud Licensing as
// seatledger applies them, and nothing else: how many seats of an
// allotment are free, who needs a free seat to be assigned (a group does
// not: members Graph cannot seat wait in the allotment's waiting room,
// and a waiting member holds no seat), the pre-checks a new assignment
// passes before Graph is asked (assignee kind, service plans, a seat
// already held, a free seat), the typed refusals they give, and which
// allotment of a SKU a new assignment draws from, with the reason and a
// sentence saying why.
//
// It does no I/O and knows no transport: callers read the mirror, hand
// it plain values (Allotment, Assignee, Held), and turn its choices and
// refusals into their own types and status codes.
package licensing

import (
	"fmt"
	"slices"
	"strings"
)

// Assignee kinds, as Graph's assigneeTypes spells them.
const (
	KindUser   = "user"
	KindGroup  = "group"
	KindDevice = "device"
)

// Allotment is what the rules need to know of an allotment.
type Allotment struct {
	ID, SKUID, SKUPartNumber     string
	AllottedUnits, ConsumedUnits int32
	// AssignableTo lists the assignee kinds, e.g. ["user", "group"].
	AssignableTo []string
	Services     []Service
	// Owner is the department that owns the allotment, "" when none.
	Owner string
	// WaitingMembers is the number of members waiting in its waiting room.
	WaitingMembers int32
}

// Service is one service plan of an allotment's SKU.
type Service struct{ PlanID, PlanName string }

// FreeSeats is the number of seats an allotment can still give:
// allotted less consumed, and never less than zero (Graph can report
// more consumed than allotted, over-assignment during a capacity cut; no
// seat is free then).
func FreeSeats(allotted, consumed int32) int32 { return max(allotted-consumed, 0) }

// Free is a's free seats (FreeSeats).
func (a Allotment) Free() int32 { return FreeSeats(a.AllottedUnits, a.ConsumedUnits) }

// HasPlan reports whether planID (any case) is a service plan of a.
func (a Allotment) HasPlan(planID string) bool {
	return slices.ContainsFunc(a.Services, func(sv Service) bool { return strings.EqualFold(sv.PlanID, planID) })
}

// NeedsFreeSeat reports whether assigning to an assignee of kind takes a
// free seat at once. A group's does not: Graph seats its members as
// seats allow and the others wait in the allotment's waiting room, where
// they hold no seat.
func NeedsFreeSeat(kind string) bool { return kind != KindGroup }

// Assignee is who a new assignment is for.
type Assignee struct {
	// Field is the request field that named the assignee (for refusals).
	Field string
	ID    string
	Kind  string // KindUser, KindGroup or KindDevice
	// UserPrincipalName and Department are a user's, "" otherwise (and
	// Department is "" for a user without one).
	UserPrincipalName string
	Department        string
}

func (a Assignee) describe() string {
	if a.Kind == KindUser && a.UserPrincipalName != "" {
		return "user " + a.UserPrincipalName
	}
	return a.Kind + " " + a.ID
}

// Held is an assignment the assignee already has.
type Held struct{ AssignmentID, AllotmentID string }

// Reason says why an allotment was chosen.
type Reason int

// The reasons, in the order of the API's AllotmentChoiceReason.
const (
	ReasonUnspecified         Reason = iota // not chosen by these rules (e.g. found by reading Graph back)
	ReasonRequested                         // the caller named the allotment
	ReasonOnlyCandidate                     // the only allotment of the SKU assignable to the assignee's kind
	ReasonOwnerDepartment                   // owned by the user's department, with a free seat
	ReasonMostAvailable                     // the most free seats of the SKU's allotments
	ReasonShortestWaitingRoom               // no free seat anywhere; the shortest waiting room (the API has it; Choose does not choose it yet)
)

// Choice is the allotment a new assignment draws from, and why.
type Choice struct {
	Allotment Allotment
	Reason    Reason
	// Detail says why in a sentence, for the caller and the audit.
	Detail string
}

// NotAssignableError refuses an assignee whose kind none of the
// candidate allotments can be assigned to.
type NotAssignableError struct {
	Assignee Assignee
	// Named is whether the caller named the allotment (else a SKU).
	Named     bool
	Allotment Allotment // the first candidate
}

func (e *NotAssignableError) Error() string {
	a := e.Allotment
	what := "allotment " + a.ID
	if !e.Named {
		what = fmt.Sprintf("no allotment of SKU %s (%s)", a.SKUPartNumber, a.SKUID)
	}
	return fmt.Sprintf("%s cannot be assigned to a %s (assignable to: %s)", what, e.Assignee.Kind, strings.Join(a.AssignableTo, ", "))
}

// UnknownPlanError refuses a service plan id that is not a service of
// the allotment's SKU.
type UnknownPlanError struct {
	PlanID    string
	Allotment Allotment
}

func (e *UnknownPlanError) Error() string {
	ids := make([]string, 0, len(e.Allotment.Services))
	for _, sv := range e.Allotment.Services {
		ids = append(ids, sv.PlanID+" ("+sv.PlanName+")")
	}
	return fmt.Sprintf("service plan %s is not a service of %s; its plans are: %s",
		e.PlanID, e.Allotment.SKUPartNumber, strings.Join(ids, ", "))
}

// AlreadyAssignedError refuses an assignee that already holds a seat
// from one of the candidate allotments.
type AlreadyAssignedError struct {
	Assignee Assignee
	Held     Held
}

func (e *AlreadyAssignedError) Error() string {
	return fmt.Sprintf("%s already holds assignment %s from allotment %s; nothing was assigned",
		e.Assignee.describe(), e.Held.AssignmentID, e.Held.AllotmentID)
}

// NoFreeSeatError refuses an assignment that needs a free seat when none
// of the candidates has one.
type NoFreeSeatError struct {
	Assignee Assignee
	// Named is whether the caller named the allotment (Full[0]).
	Named bool
	// Full are the candidates, every one without a free seat.
	Full []Allotment
	// Elsewhere, for a named allotment, are the SKU's allotments (the
	// caller reads them once refused): the message names their free
	// seats.
	Elsewhere []Allotment
}

func (e *NoFreeSeatError) Error() string {
	a := e.Full[0]
	if e.Named {
		return fmt.Sprintf("allotment %s (%s) has no free licence (%d of %d in use); %s",
			a.ID, a.SKUPartNumber, a.ConsumedUnits, a.AllottedUnits, FreeSeatsElsewhere(e.Elsewhere, a.ID))
	}
	return fmt.Sprintf("no allotment of %s (%s) assignable to a %s has a free licence (%d allotments, all in use)",
		a.SKUPartNumber, a.SKUID, e.Assignee.Kind, len(e.Full))
}

// FreeSeatsElsewhere describes the free seats of a SKU's allotments
// other than except, for the message of a full allotment.
func FreeSeatsElsewhere(all []Allotment, except string) string {
	var parts []string
	for _, a := range all {
		if a.ID != except && a.Free() > 0 {
			parts = append(parts, fmt.Sprintf("allotments/%s has %d free", a.ID, a.Free()))
		}
	}
	if len(parts) == 0 {
		return "no other allotment of this SKU has a free licence"
	}
	return "other allotments of this SKU: " + strings.Join(parts, ", ")
}

// Usable returns the candidates who can be assigned to (its kind is in
// their AssignableTo), or a *NotAssignableError when there is none. all
// must not be empty; named says the caller named the one allotment.
func Usable(who Assignee, all []Allotment, named bool) ([]Allotment, error) {
	var usable []Allotment
	for _, a := range all {
		if slices.Contains(a.AssignableTo, who.Kind) {
			usable = append(usable, a)
		}
	}
	if len(usable) == 0 {
		return nil, &NotAssignableError{Assignee: who, Named: named, Allotment: all[0]}
	}
	return usable, nil
}

// CheckPlan refuses (*UnknownPlanError) a disabled service plan id that
// is not a service of a. Every allotment of a SKU has the SKU's
// services, so any usable candidate answers for all.
func CheckPlan(a Allotment, planID string) error {
	if !a.HasPlan(planID) {
		return &UnknownPlanError{PlanID: planID, Allotment: a}
	}
	return nil
}

// CheckNotHeld refuses (*AlreadyAssignedError) an assignee that already
// holds an assignment from one of the usable allotments: Graph gives one
// assignee at most one seat of an allotment.
func CheckNotHeld(who Assignee, usable []Allotment, held []Held) error {
	for _, h := range held {
		if slices.ContainsFunc(usable, func(a Allotment) bool { return a.ID == h.AllotmentID }) {
			return &AlreadyAssignedError{Assignee: who, Held: h}
		}
	}
	return nil
}

// Requested is the choice of the allotment the caller named: it is
// refused (*NoFreeSeatError, Named) when who needs a free seat and a has
// none.
func Requested(who Assignee, a Allotment) (Choice, error) {
	if NeedsFreeSeat(who.Kind) && a.Free() == 0 {
		return Choice{}, &NoFreeSeatError{Assignee: who, Named: true, Full: []Allotment{a}}
	}
	return Choice{Allotment: a, Reason: ReasonRequested,
		Detail: fmt.Sprintf("allotment %s was requested; it had %d free licences", a.ID, a.Free())}, nil
}

// Choose picks an allotment of a SKU among the usable ones: one owned by
// the user's department with a free seat first, else the only candidate,
// else the one with the most free seats (ties by id, so the choice is
// stable). When who needs a free seat and none has one it is refused
// (*NoFreeSeatError listing every candidate, most free first). A group
// needs none: with no seat free anywhere it is given the allotment with
// the shortest waiting room (ties by id), where its members wait least.
func Choose(who Assignee, usable []Allotment) (Choice, error) {
	usable = slices.Clone(usable)
	slices.SortStableFunc(usable, func(a, b Allotment) int {
		if d := b.Free() - a.Free(); d != 0 {
			return int(d)
		}
		return strings.Compare(a.ID, b.ID)
	})
	var withFree []Allotment
	for _, a := range usable {
		if a.Free() > 0 {
			withFree = append(withFree, a)
		}
	}
	part := usable[0].SKUPartNumber
	if NeedsFreeSeat(who.Kind) && len(withFree) == 0 {
		return Choice{}, &NoFreeSeatError{Assignee: who, Full: usable}
	}
	if who.Kind == KindUser && who.Department != "" {
		for _, a := range withFree {
			if a.Owner == who.Department {
				return Choice{Allotment: a, Reason: ReasonOwnerDepartment,
					Detail: fmt.Sprintf("allotment %s of %s is owned by %s, the user's department, and had %d free licences",
						a.ID, part, who.Department, a.Free())}, nil
			}
		}
	}
	if len(withFree) == 0 && len(usable) > 1 {
		a := slices.MinFunc(usable, func(a, b Allotment) int {
			if d := int(a.WaitingMembers) - int(b.WaitingMembers); d != 0 {
				return d
			}
			return strings.Compare(a.ID, b.ID)
		})
		return Choice{Allotment: a, Reason: ReasonShortestWaitingRoom,
			Detail: fmt.Sprintf("none of the %d allotments of %s had a free licence; this one had the shortest waiting room (%d waiting)",
				len(usable), part, a.WaitingMembers)}, nil
	}
	a := usable[0]
	if len(usable) == 1 {
		return Choice{Allotment: a, Reason: ReasonOnlyCandidate,
			Detail: fmt.Sprintf("allotment %s is the only allotment of %s assignable to a %s; it had %d free licences",
				a.ID, part, who.Kind, a.Free())}, nil
	}
	return Choice{Allotment: a, Reason: ReasonMostAvailable,
		Detail: fmt.Sprintf("%d of %d allotments of %s had free licences; this one had the most (%d)",
			len(withFree), len(usable), part, a.Free())}, nil
}
