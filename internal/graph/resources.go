package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Assignment links one allotment to one user, group or device. AllotmentID
// and AssignedTo are filled when Graph expanded them ($expand=allotment,
// assignedTo), or when the request implied them.
type Assignment struct {
	ID          string
	AllotmentID string
	AssignedTo  DirectoryObject
	// DisabledServicePlanIDs are the plans switched off; empty means all
	// of the allotment's services are on.
	DisabledServicePlanIDs []string
	Raw                    json.RawMessage // the object as received, unknown properties included
}

// AssignmentPage is one page of an assignments collection.
type AssignmentPage struct {
	Assignments []Assignment
	NextLink    string
}

type wireAssignment struct {
	ID                     string          `json:"id"`
	DisabledServicePlanIDs []string        `json:"disabledServicePlanIds"`
	Allotment              *wireRef        `json:"allotment"`
	AssignedTo             json.RawMessage `json:"assignedTo"`
}

// DecodeAssignment decodes a single assignment, bare or wrapped in
// "value". Unlike a page item, it may lack an id: the documented create
// responses for users, groups and devices carry none.
func DecodeAssignment(data []byte) (Assignment, error) {
	return decodeEntity(data, "assignment", decodeAssignmentObject)
}

// DecodeAssignmentPage decodes a page of assignments; every item must have
// an id.
func DecodeAssignmentPage(data []byte) (AssignmentPage, error) {
	items, next, _, err := decodePage(data, "assignment", func(raw []byte) (Assignment, error) {
		a, err := decodeAssignmentObject(raw)
		if err == nil && a.ID == "" {
			err = errors.New("assignment has no id")
		}
		return a, err
	})
	if err != nil {
		return AssignmentPage{}, err
	}
	return AssignmentPage{Assignments: items, NextLink: next}, nil
}

func decodeAssignmentObject(raw []byte) (Assignment, error) {
	var w wireAssignment
	if err := json.Unmarshal(raw, &w); err != nil {
		return Assignment{}, err
	}
	to, err := expandedObject(w.AssignedTo)
	if err != nil {
		return Assignment{}, err
	}
	return Assignment{
		ID:                     w.ID,
		AllotmentID:            refID(w.Allotment),
		AssignedTo:             to,
		DisabledServicePlanIDs: w.DisabledServicePlanIDs,
		Raw:                    json.RawMessage(bytes.Clone(raw)),
	}, nil
}

// WaitingMember is a user or device waiting for a seat in a full
// allotment, first in first out by WaitingSince.
type WaitingMember struct {
	ID           string
	AllotmentID  string          // from the listing's allotment, or an expanded allotment
	Member       DirectoryObject // from $expand=assignedTo; zero when not expanded
	WaitingSince time.Time       // UTC
	Raw          json.RawMessage
}

// WaitingMemberPage is one page of a waitingMembers collection.
type WaitingMemberPage struct {
	WaitingMembers []WaitingMember
	NextLink       string
}

type wireWaitingMember struct {
	ID                   string          `json:"id"`
	WaitingSinceDateTime string          `json:"waitingSinceDateTime"`
	Allotment            *wireRef        `json:"allotment"`
	AssignedTo           json.RawMessage `json:"assignedTo"`
}

// DecodeWaitingMember decodes a single waiting member, bare or wrapped in
// "value".
func DecodeWaitingMember(data []byte) (WaitingMember, error) {
	return decodeEntity(data, "waiting member", decodeWaitingMemberObject)
}

// DecodeWaitingMemberPage decodes a page of waiting members.
func DecodeWaitingMemberPage(data []byte) (WaitingMemberPage, error) {
	items, next, _, err := decodePage(data, "waiting member", decodeWaitingMemberObject)
	if err != nil {
		return WaitingMemberPage{}, err
	}
	return WaitingMemberPage{WaitingMembers: items, NextLink: next}, nil
}

func decodeWaitingMemberObject(raw []byte) (WaitingMember, error) {
	var w wireWaitingMember
	if err := json.Unmarshal(raw, &w); err != nil {
		return WaitingMember{}, err
	}
	if w.ID == "" {
		return WaitingMember{}, errors.New("waiting member has no id")
	}
	since, err := parseDateTime(w.WaitingSinceDateTime)
	if err != nil {
		return WaitingMember{}, fmt.Errorf("waitingSinceDateTime: %w", err)
	}
	m, err := expandedObject(w.AssignedTo)
	if err != nil {
		return WaitingMember{}, err
	}
	return WaitingMember{ID: w.ID, AllotmentID: refID(w.Allotment), Member: m, WaitingSince: since, Raw: json.RawMessage(bytes.Clone(raw))}, nil
}

// AssignmentError is an asynchronous licence processing error for a user
// and a SKU, such as Code "MissingDependency". Code is a free string:
// values this package has never seen are kept as they came.
type AssignmentError struct {
	ID         string
	Code       string
	Message    string
	SKUID      string
	OccurredAt time.Time       // occurrenceDateTime, UTC; zero when absent
	User       DirectoryObject // from $expand=assignedTo; zero when not expanded
	Raw        json.RawMessage
}

// AssignmentErrorPage is one page of an assignmentErrors collection.
type AssignmentErrorPage struct {
	AssignmentErrors []AssignmentError
	NextLink         string
}

type wireAssignmentError struct {
	ID                 string          `json:"id"`
	Code               string          `json:"code"`
	Message            string          `json:"message"`
	OccurrenceDateTime string          `json:"occurrenceDateTime"`
	SKUID              string          `json:"skuId"`
	AssignedTo         json.RawMessage `json:"assignedTo"`
}

// DecodeAssignmentError decodes a single assignment error, bare or wrapped
// in "value".
func DecodeAssignmentError(data []byte) (AssignmentError, error) {
	return decodeEntity(data, "assignment error", decodeAssignmentErrorObject)
}

// DecodeAssignmentErrorPage decodes a page of assignment errors.
func DecodeAssignmentErrorPage(data []byte) (AssignmentErrorPage, error) {
	items, next, _, err := decodePage(data, "assignment error", decodeAssignmentErrorObject)
	if err != nil {
		return AssignmentErrorPage{}, err
	}
	return AssignmentErrorPage{AssignmentErrors: items, NextLink: next}, nil
}

func decodeAssignmentErrorObject(raw []byte) (AssignmentError, error) {
	var w wireAssignmentError
	if err := json.Unmarshal(raw, &w); err != nil {
		return AssignmentError{}, err
	}
	if w.ID == "" {
		return AssignmentError{}, errors.New("assignment error has no id")
	}
	at, err := parseDateTime(w.OccurrenceDateTime)
	if err != nil {
		return AssignmentError{}, fmt.Errorf("occurrenceDateTime: %w", err)
	}
	u, err := expandedObject(w.AssignedTo)
	if err != nil {
		return AssignmentError{}, err
	}
	return AssignmentError{
		ID: w.ID, Code: w.Code, Message: w.Message, SKUID: w.SKUID, OccurredAt: at, User: u,
		Raw: json.RawMessage(bytes.Clone(raw)),
	}, nil
}

// UsageRight is the effective right of a user, group or device to a SKU's
// services, direct and inherited through groups combined. Expanded
// assignments and allotments stay in Raw.
type UsageRight struct {
	ID            string
	SKUID         string
	SKUPartNumber string
	Services      []Service
	Raw           json.RawMessage
}

// UsageRightPage is one page of a usageRights collection.
type UsageRightPage struct {
	UsageRights []UsageRight
	NextLink    string
}

type wireUsageRight struct {
	ID            string        `json:"id"`
	SKUID         string        `json:"skuId"`
	SKUPartNumber string        `json:"skuPartNumber"`
	Services      []wireService `json:"services"`
}

// DecodeUsageRight decodes a single usage right, bare (as the
// documentation shows it) or wrapped in "value".
func DecodeUsageRight(data []byte) (UsageRight, error) {
	return decodeEntity(data, "usage right", decodeUsageRightObject)
}

// DecodeUsageRightPage decodes a page of usage rights.
func DecodeUsageRightPage(data []byte) (UsageRightPage, error) {
	items, next, _, err := decodePage(data, "usage right", decodeUsageRightObject)
	if err != nil {
		return UsageRightPage{}, err
	}
	return UsageRightPage{UsageRights: items, NextLink: next}, nil
}

func decodeUsageRightObject(raw []byte) (UsageRight, error) {
	var w wireUsageRight
	if err := json.Unmarshal(raw, &w); err != nil {
		return UsageRight{}, err
	}
	if w.ID == "" {
		return UsageRight{}, errors.New("usage right has no id")
	}
	return UsageRight{
		ID: w.ID, SKUID: w.SKUID, SKUPartNumber: w.SKUPartNumber, Services: services(w.Services),
		Raw: json.RawMessage(bytes.Clone(raw)),
	}, nil
}

func services(ws []wireService) []Service {
	var out []Service
	for _, s := range ws {
		out = append(out, Service{PlanID: s.PlanID, PlanName: s.PlanName, AssignableTo: splitFlags(s.AssignableTo)})
	}
	return out
}

// SKUTotal is one row of the allotments aggregated per SKU
// ($apply=groupby((skuId,skuPartNumber), aggregate(…))): plain objects
// with no id.
type SKUTotal struct {
	SKUID              string
	SKUPartNumber      string
	TotalAllottedUnits int64
	TotalConsumedUnits int64
	Raw                json.RawMessage
}

// SKUTotalPage is one page of per-SKU totals.
type SKUTotalPage struct {
	Totals   []SKUTotal
	NextLink string
}

// DecodeSKUTotalPage decodes a page of the allotments grouped by SKU with
// the aggregate aliases totalAllottedUnits and totalConsumedUnits.
func DecodeSKUTotalPage(data []byte) (SKUTotalPage, error) {
	items, next, _, err := decodePage(data, "SKU total", func(raw []byte) (SKUTotal, error) {
		var w struct {
			SKUID              string `json:"skuId"`
			SKUPartNumber      string `json:"skuPartNumber"`
			TotalAllottedUnits int64  `json:"totalAllottedUnits"`
			TotalConsumedUnits int64  `json:"totalConsumedUnits"`
		}
		if err := json.Unmarshal(raw, &w); err != nil {
			return SKUTotal{}, err
		}
		if w.SKUID == "" {
			return SKUTotal{}, errors.New("SKU total has no skuId")
		}
		return SKUTotal{SKUID: w.SKUID, SKUPartNumber: w.SKUPartNumber, TotalAllottedUnits: w.TotalAllottedUnits,
			TotalConsumedUnits: w.TotalConsumedUnits, Raw: json.RawMessage(bytes.Clone(raw))}, nil
	})
	if err != nil {
		return SKUTotalPage{}, err
	}
	return SKUTotalPage{Totals: items, NextLink: next}, nil
}
