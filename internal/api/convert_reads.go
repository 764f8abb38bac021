package api

import (
	"time"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/store"
)

var assigneeTypes = map[string]seatledgerv1.AssigneeType{
	"user":   seatledgerv1.AssigneeType_ASSIGNEE_TYPE_USER,
	"group":  seatledgerv1.AssigneeType_ASSIGNEE_TYPE_GROUP,
	"device": seatledgerv1.AssigneeType_ASSIGNEE_TYPE_DEVICE,
}

func assigneeTypeFromProto(t seatledgerv1.AssigneeType) string {
	for k, v := range assigneeTypes {
		if v == t {
			return k
		}
	}
	return ""
}

func subscriptionStateFromProto(s seatledgerv1.SubscriptionState) string {
	for k, v := range subscriptionStates {
		if v == s {
			return k
		}
	}
	return ""
}

func subscriptionRowToProto(r store.SubscriptionRow) *seatledgerv1.Subscription {
	return &seatledgerv1.Subscription{
		Name:              "subscriptions/" + r.SubscriptionID,
		SubscriptionId:    r.SubscriptionID,
		State:             subscriptionStateToProto(r.State),
		StartDate:         r.StartDate,
		NextLifecycleDate: r.NextLifecycleDate,
		Tags:              subscriptionTagsToProto(r.Tags),
		AllotmentIds:      r.AllotmentIDs,
		SkuIds:            r.SKUIDs,
		SkuPartNumbers:    r.SKUPartNumbers,
		ObserveTime:       timeToProto(r.ObservedAt),
	}
}

func assignmentToProto(a store.Assignment) *seatledgerv1.Assignment {
	return &seatledgerv1.Assignment{
		Name:          "assignments/" + a.ID,
		Id:            a.ID,
		AllotmentId:   a.AllotmentID,
		SkuId:         a.SKUID,
		SkuPartNumber: a.SKUPartNumber,
		Assignee: &seatledgerv1.Assignee{
			Type:              assigneeTypes[a.AssigneeType],
			Id:                a.AssigneeID,
			DisplayName:       a.AssigneeDisplayName,
			UserPrincipalName: a.AssigneeUPN,
			Department:        a.AssigneeDepartment,
		},
		DisabledServicePlanIds: a.DisabledPlanIDs,
		ObserveTime:            timeToProto(a.ObservedAt),
		FirstObserveTime:       timeToProto(a.FirstObservedAt),
	}
}

func waitingMemberToProto(w store.WaitingMember, now time.Time) *seatledgerv1.WaitingMember {
	return &seatledgerv1.WaitingMember{
		Name:          "waiting-members/" + w.ID,
		Id:            w.ID,
		AllotmentId:   w.AllotmentID,
		SkuId:         w.SKUID,
		SkuPartNumber: w.SKUPartNumber,
		Member: &seatledgerv1.Assignee{
			Type:              assigneeTypes[w.MemberType],
			Id:                w.MemberID,
			DisplayName:       w.MemberDisplayName,
			UserPrincipalName: w.MemberUPN,
			Department:        w.MemberDepartment,
		},
		WaitingSinceTime: timeToProto(w.WaitingSince),
		WaitAge:          waitAge(w.WaitingSince, now),
		QueuePosition:    int32(w.QueuePosition),
		ObserveTime:      timeToProto(w.ObservedAt),
	}
}

func assignmentErrorToProto(e store.AssignmentError) *seatledgerv1.AssignmentError {
	return &seatledgerv1.AssignmentError{
		Name:          "assignment-errors/" + e.ID,
		Id:            e.ID,
		Code:          e.Code,
		Message:       e.Message,
		SkuId:         e.SKUID,
		SkuPartNumber: e.SKUPartNumber,
		User: &seatledgerv1.Assignee{
			Type:              seatledgerv1.AssigneeType_ASSIGNEE_TYPE_USER,
			Id:                e.UserID,
			DisplayName:       e.UserDisplayName,
			UserPrincipalName: e.UserUPN,
			Department:        e.UserDepartment,
		},
		OccurrenceTime: timeToProto(e.OccurredAt),
		Remediation:    remediationFor(e.Code),
		ObserveTime:    timeToProto(e.ObservedAt),
	}
}
