package sync

import (
	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/store"
)

// Converters from the Graph client's types to the store's rows. They live
// here, in the consumer, so that neither graph nor store knows the other.

func allotmentFromGraph(a graph.Allotment) store.Allotment {
	out := store.Allotment{
		ID:            a.ID,
		SKUID:         a.SKUID,
		SKUPartNumber: a.SKUPartNumber,
		AllottedUnits: a.AllottedUnits,
		ConsumedUnits: a.ConsumedUnits,
		AssignableTo:  a.AssignableTo,
		Raw:           a.Raw,
	}
	for _, sv := range a.Services {
		out.Services = append(out.Services, store.Service{
			PlanID:       sv.PlanID,
			PlanName:     sv.PlanName,
			AssignableTo: sv.AssignableTo,
		})
	}
	for _, sub := range a.Subscriptions {
		out.Subscriptions = append(out.Subscriptions, store.Subscription{
			SubscriptionID:    sub.SubscriptionID,
			State:             sub.State,
			StartDate:         sub.StartDate,
			NextLifecycleDate: sub.NextLifecycleDate,
			Tags:              sub.Tags,
		})
	}
	return out
}

// assignmentFromGraph converts a listed assignment. The assignee's
// display name goes to AssigneeDisplayName: the store keeps a group's
// current name beside the history, and leaves it out of the raw it
// versions.
func assignmentFromGraph(a graph.Assignment) store.Assignment {
	return store.Assignment{
		ID:                  a.ID,
		AllotmentID:         a.AllotmentID,
		AssigneeID:          a.AssignedTo.ID,
		AssigneeType:        a.AssignedTo.Type,
		AssigneeDisplayName: a.AssignedTo.DisplayName,
		DisabledPlanIDs:     a.DisabledServicePlanIDs,
		Raw:                 a.Raw,
	}
}

func waitingMemberFromGraph(w graph.WaitingMember) store.WaitingMember {
	return store.WaitingMember{
		ID:           w.ID,
		AllotmentID:  w.AllotmentID,
		MemberID:     w.Member.ID,
		MemberType:   w.Member.Type,
		WaitingSince: w.WaitingSince,
		Raw:          w.Raw,
	}
}

func assignmentErrorFromGraph(e graph.AssignmentError) store.AssignmentError {
	return store.AssignmentError{
		ID:         e.ID,
		UserID:     e.User.ID,
		SKUID:      e.SKUID,
		Code:       e.Code,
		Message:    e.Message,
		OccurredAt: e.OccurredAt,
		Raw:        e.Raw,
	}
}

func userFromGraph(u graph.User) store.User {
	return store.User{
		ID:                u.ID,
		UserPrincipalName: u.UserPrincipalName,
		DisplayName:       u.DisplayName,
		Department:        u.Department,
		CompanyName:       u.CompanyName,
		CostCenter:        u.CostCenter,
		AccountEnabled:    u.AccountEnabled,
		Raw:               u.Raw,
	}
}
