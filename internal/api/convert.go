package api

import (
	"slices"
	"strconv"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/licensing"
	"github.com/seatledger/seatledger/internal/store"
)

func allotmentToProto(a store.Allotment) *seatledgerv1.Allotment {
	out := &seatledgerv1.Allotment{
		Name:            "allotments/" + a.ID,
		Id:              a.ID,
		SkuId:           a.SKUID,
		SkuPartNumber:   a.SKUPartNumber,
		AllottedUnits:   a.AllottedUnits,
		ConsumedUnits:   a.ConsumedUnits,
		AvailableUnits:  licensing.FreeSeats(a.AllottedUnits, a.ConsumedUnits),
		AssignableTo:    assigneeTypesToProto(a.AssignableTo),
		ObserveTime:     timeToProto(a.ObservedAt),
		OwnerDepartment: a.OwnerDepartment,
		WaitingMembers:  a.WaitingMembers,
	}
	for _, sv := range a.Services {
		out.Services = append(out.Services, &seatledgerv1.Service{
			PlanId:       sv.PlanID,
			PlanName:     sv.PlanName,
			AssignableTo: assigneeTypesToProto(sv.AssignableTo),
		})
	}
	for _, sub := range a.Subscriptions {
		out.Subscriptions = append(out.Subscriptions, &seatledgerv1.Subscription{
			Name:              "subscriptions/" + sub.SubscriptionID,
			SubscriptionId:    sub.SubscriptionID,
			State:             subscriptionStateToProto(sub.State),
			StartDate:         sub.StartDate,
			NextLifecycleDate: sub.NextLifecycleDate,
			Tags:              subscriptionTagsToProto(sub.Tags),
			AllotmentIds:      sub.AllotmentIDs,
			SkuIds:            sub.SKUIDs,
			SkuPartNumbers:    sub.SKUPartNumbers,
			ObserveTime:       timeToProto(sub.ObservedAt),
		})
	}
	return out
}

// allotmentToRules is a as licensing's rules see it, owned by owner.
func allotmentToRules(a store.Allotment, owner string) licensing.Allotment {
	out := licensing.Allotment{ID: a.ID, SKUID: a.SKUID, SKUPartNumber: a.SKUPartNumber,
		AllottedUnits: a.AllottedUnits, ConsumedUnits: a.ConsumedUnits, AssignableTo: a.AssignableTo, Owner: owner,
		WaitingMembers: a.WaitingMembers}
	for _, sv := range a.Services {
		out.Services = append(out.Services, licensing.Service{PlanID: sv.PlanID, PlanName: sv.PlanName})
	}
	return out
}

// allotmentsToRules converts allotments, their owners taken from owners
// (by allotment id; nil for none).
func allotmentsToRules(all []store.Allotment, owners map[string]string) []licensing.Allotment {
	out := make([]licensing.Allotment, 0, len(all))
	for _, a := range all {
		out = append(out, allotmentToRules(a, owners[a.ID]))
	}
	return out
}

// heldToRules is an assignee's assignments as licensing sees them.
func heldToRules(held []store.Assignment) []licensing.Held {
	out := make([]licensing.Held, 0, len(held))
	for _, h := range held {
		out = append(out, licensing.Held{AssignmentID: h.ID, AllotmentID: h.AllotmentID})
	}
	return out
}

// choiceReasons maps licensing's reasons to the API's.
var choiceReasons = map[licensing.Reason]seatledgerv1.AllotmentChoiceReason{
	licensing.ReasonRequested:           seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_REQUESTED,
	licensing.ReasonOnlyCandidate:       seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_ONLY_CANDIDATE,
	licensing.ReasonOwnerDepartment:     seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_OWNER_DEPARTMENT,
	licensing.ReasonMostAvailable:       seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_MOST_AVAILABLE_UNITS,
	licensing.ReasonShortestWaitingRoom: seatledgerv1.AllotmentChoiceReason_ALLOTMENT_CHOICE_REASON_SHORTEST_WAITING_ROOM,
}

func choiceReasonToProto(r licensing.Reason) seatledgerv1.AllotmentChoiceReason {
	return choiceReasons[r]
}

// assigneeTypesToProto maps Graph's assigneeTypes flags. "none" and values
// this version does not know are left out rather than guessed.
func assigneeTypesToProto(types []string) []seatledgerv1.AssigneeType {
	var out []seatledgerv1.AssigneeType
	for _, t := range types {
		if v, ok := assigneeTypes[t]; ok && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// subscriptionStates maps Graph's subscriptionState values; an unknown
// value reads as SUBSCRIPTION_STATE_UNSPECIFIED.
var subscriptionStates = map[string]seatledgerv1.SubscriptionState{
	"active":    seatledgerv1.SubscriptionState_SUBSCRIPTION_STATE_ACTIVE,
	"warning":   seatledgerv1.SubscriptionState_SUBSCRIPTION_STATE_WARNING,
	"suspended": seatledgerv1.SubscriptionState_SUBSCRIPTION_STATE_SUSPENDED,
	"lockedOut": seatledgerv1.SubscriptionState_SUBSCRIPTION_STATE_LOCKED_OUT,
	"deleted":   seatledgerv1.SubscriptionState_SUBSCRIPTION_STATE_DELETED,
}

func subscriptionStateToProto(s string) seatledgerv1.SubscriptionState { return subscriptionStates[s] }

func subscriptionTagsToProto(tags []string) []seatledgerv1.SubscriptionTag {
	var out []seatledgerv1.SubscriptionTag
	for _, t := range tags {
		if t == "trial" {
			out = append(out, seatledgerv1.SubscriptionTag_SUBSCRIPTION_TAG_TRIAL)
		}
	}
	return out
}

var syncOutcomes = map[string]seatledgerv1.SyncOutcome{
	"running":   seatledgerv1.SyncOutcome_SYNC_OUTCOME_RUNNING,
	"succeeded": seatledgerv1.SyncOutcome_SYNC_OUTCOME_SUCCEEDED,
	"failed":    seatledgerv1.SyncOutcome_SYNC_OUTCOME_FAILED,
	"held":      seatledgerv1.SyncOutcome_SYNC_OUTCOME_HELD,
}

func syncRunToProto(r store.SyncRun) *seatledgerv1.SyncRun {
	out := &seatledgerv1.SyncRun{
		Name:               "sync/runs/" + strconv.FormatInt(r.ID, 10),
		Id:                 r.ID,
		StartTime:          timeToProto(r.StartedAt),
		EndTime:            timeToProto(r.FinishedAt),
		Outcome:            syncOutcomes[r.Outcome],
		Error:              r.Error,
		GraphRequests:      r.GraphRequests,
		ThrottledResponses: r.Throttled,
		BytesReceived:      r.BytesReceived,
		Demo:               r.Demo,
	}
	entities := make([]string, 0, len(r.Counts))
	for e := range r.Counts {
		entities = append(entities, e)
	}
	slices.Sort(entities) // stable output for callers and goldens
	for _, e := range entities {
		c := r.Counts[e]
		out.EntityCounts = append(out.EntityCounts, &seatledgerv1.EntityCounts{
			Entity: e, Added: c.Added, Changed: c.Changed, Removed: c.Removed, Unchanged: c.Unchanged,
		})
	}
	return out
}

func timeToProto(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
