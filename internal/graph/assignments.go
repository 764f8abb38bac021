package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"slices"
)

// assignmentType is the @odata.type the documentation's write examples
// send.
const assignmentType = "#microsoft.graph.cloudLicensing.assignment"

// expandIDs asks for the allotment and the assignee of each assignment,
// reduced to their ids, and the assignee's @odata.type and displayName
// (the only place a group assignee's name comes from without a request
// per group).
var expandIDs = []Expand{{Property: "allotment", Select: []string{"id"}}, {Property: "assignedTo", Select: []string{"id", "displayName"}}}

func decodeAssignments(b []byte) ([]Assignment, string, error) {
	p, err := DecodeAssignmentPage(b)
	return p.Assignments, p.NextLink, err
}

// Assignments lists every assignment of the tenant with its allotment id
// and assignee (id, type and display name) filled, following @odata.nextLink verbatim. The sequence
// stops after the first error, which it yields with a zero Assignment.
func (c *Client) Assignments(ctx context.Context) iter.Seq2[Assignment, error] {
	return list(c, ctx, "assignments",
		c.pathURL(c.pageQuery(Query{Expand: expandIDs}), "admin", "cloudLicensing", "assignments"), decodeAssignments)
}

// UserAssignments lists the direct assignments of one user, with their
// allotment ids; AssignedTo is the user.
func (c *Client) UserAssignments(ctx context.Context, userID string) iter.Seq2[Assignment, error] {
	if userID == "" {
		return failed[Assignment](errors.New("list user assignments: empty user id"))
	}
	seq := list(c, ctx, "assignments of user "+userID,
		c.pathURL(c.pageQuery(Query{Expand: expandIDs}), "users", userID, "cloudLicensing", "assignments"), decodeAssignments)
	return func(yield func(Assignment, error) bool) {
		for a, err := range seq {
			if err == nil && a.AssignedTo.ID == "" {
				a.AssignedTo = DirectoryObject{ID: userID, Type: "user"}
			}
			if !yield(a, err) {
				return
			}
		}
	}
}

// AllotmentWaitingMembers lists the members waiting for a seat in one
// allotment, with the member's id and type.
func (c *Client) AllotmentWaitingMembers(ctx context.Context, allotmentID string) iter.Seq2[WaitingMember, error] {
	if allotmentID == "" {
		return failed[WaitingMember](errors.New("list waiting members: empty allotment id"))
	}
	q := c.pageQuery(Query{Expand: []Expand{{Property: "assignedTo", Select: []string{"id"}}}})
	seq := list(c, ctx, "waiting members of allotment "+allotmentID,
		c.pathURL(q, "admin", "cloudLicensing", "allotments", allotmentID, "waitingMembers"),
		func(b []byte) ([]WaitingMember, string, error) {
			p, err := DecodeWaitingMemberPage(b)
			return p.WaitingMembers, p.NextLink, err
		})
	return func(yield func(WaitingMember, error) bool) {
		for m, err := range seq {
			if err == nil && m.AllotmentID == "" {
				m.AllotmentID = allotmentID
			}
			if !yield(m, err) {
				return
			}
		}
	}
}

// AssignmentErrors lists every assignment error of the tenant, with the
// affected user's id.
func (c *Client) AssignmentErrors(ctx context.Context) iter.Seq2[AssignmentError, error] {
	q := c.pageQuery(Query{Expand: []Expand{{Property: "assignedTo", Select: []string{"id"}}}})
	return list(c, ctx, "assignment errors", c.pathURL(q, "admin", "cloudLicensing", "assignmentErrors"),
		func(b []byte) ([]AssignmentError, string, error) {
			p, err := DecodeAssignmentErrorPage(b)
			return p.AssignmentErrors, p.NextLink, err
		})
}

// UserUsageRights lists the effective usage rights of one user.
func (c *Client) UserUsageRights(ctx context.Context, userID string) iter.Seq2[UsageRight, error] {
	if userID == "" {
		return failed[UsageRight](errors.New("list usage rights: empty user id"))
	}
	return list(c, ctx, "usage rights of user "+userID,
		c.pathURL(c.pageQuery(Query{}), "users", userID, "cloudLicensing", "usageRights"),
		func(b []byte) ([]UsageRight, string, error) {
			p, err := DecodeUsageRightPage(b)
			return p.UsageRights, p.NextLink, err
		})
}

// failed is a sequence that yields err once.
func failed[T any](err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, err)
	}
}

// CreateAssignment asks for a new assignment of an allotment to a user,
// group or device.
type CreateAssignment struct {
	AllotmentID  string
	AssigneeID   string // a directory object id (GUID)
	AssigneeType string // "user", "group" or "device"
	// DisabledServicePlanIDs are plan ids of the allotment to switch off;
	// nil or empty means all on.
	DisabledServicePlanIDs []string
}

// createAssignmentBody is the central create request: both binds, with
// absolute URLs as the documentation writes them.
type createAssignmentBody struct {
	Type                   string   `json:"@odata.type"`
	AllotmentBind          string   `json:"allotment@odata.bind"`
	AssignedToBind         string   `json:"assignedTo@odata.bind"`
	DisabledServicePlanIDs []string `json:"disabledServicePlanIds"`
}

// collectionOf is the directory collection of each assignee type.
var collectionOf = map[string]string{"user": "users", "group": "groups", "device": "devices"}

// createBody validates req and returns the JSON of the create request.
func (c *Client) createBody(req CreateAssignment) ([]byte, error) {
	coll, ok := collectionOf[req.AssigneeType]
	switch {
	case req.AllotmentID == "":
		return nil, errors.New("empty allotment id")
	case !ok:
		return nil, fmt.Errorf("assignee type %q is not user, group or device", req.AssigneeType)
	case !IsGUID(req.AssigneeID):
		return nil, fmt.Errorf("assignee id %q is not a GUID", req.AssigneeID)
	}
	if err := checkPlanIDs(req.DisabledServicePlanIDs); err != nil {
		return nil, err
	}
	return json.Marshal(createAssignmentBody{
		Type:                   assignmentType,
		AllotmentBind:          c.pathURL(Query{}, "admin", "cloudLicensing", "allotments", req.AllotmentID),
		AssignedToBind:         c.pathURL(Query{}, coll, req.AssigneeID),
		DisabledServicePlanIDs: nonNil(req.DisabledServicePlanIDs),
	})
}

func checkPlanIDs(ids []string) error {
	for _, p := range ids {
		if !IsGUID(p) {
			return fmt.Errorf("disabled service plan id %q is not a GUID", p)
		}
	}
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// CreateAssignment creates an assignment through the central collection
// (POST /admin/cloudLicensing/assignments with allotment and assignee
// bound). Graph processes it asynchronously: capacity shortfalls and plan
// conflicts of group members show up later as waiting members and
// assignment errors; a direct assignment to a full allotment fails at once
// (400, InnerCode "noAvailableLicenses").
//
// The POST is never repeated after Graph may have acted on it: when the
// outcome is unknown (timeout, reset, 5xx, unreadable answer) the error
// satisfies OutcomeUnknown and the caller must read back. The returned
// assignment has AllotmentID and AssignedTo from req; its ID is "" if
// Graph's answer omitted it (as some documented examples do).
func (c *Client) CreateAssignment(ctx context.Context, req CreateAssignment) (Assignment, error) {
	body, err := c.createBody(req)
	if err != nil {
		return Assignment{}, fmt.Errorf("create assignment: %w", err)
	}
	resp, _, err := c.do(ctx, http.MethodPost, c.pathURL(Query{}, "admin", "cloudLicensing", "assignments"), body, false)
	if err != nil {
		return Assignment{}, fmt.Errorf("create assignment of allotment %q to %s %s: %w", req.AllotmentID, req.AssigneeType, req.AssigneeID, err)
	}
	a, err := DecodeAssignment(resp)
	if err != nil {
		// Graph created it, but we cannot tell its id.
		return Assignment{}, &unknownOutcomeError{fmt.Errorf("create assignment of allotment %q to %s %s: %w", req.AllotmentID, req.AssigneeType, req.AssigneeID, err)}
	}
	if a.AllotmentID == "" {
		a.AllotmentID = req.AllotmentID
	}
	if a.AssignedTo.ID == "" {
		a.AssignedTo = DirectoryObject{ID: req.AssigneeID, Type: req.AssigneeType}
	}
	if a.DisabledServicePlanIDs == nil {
		a.DisabledServicePlanIDs = slices.Clone(nonNil(req.DisabledServicePlanIDs))
	}
	return a, nil
}

// UpdateAssignment replaces the disabled service plans of an assignment
// (nil or empty switches every service on) and returns the assignment as
// Graph answers it (200 with the body; a 204 is tolerated). The PATCH
// replaces the whole list, so it is retried like a GET; it never carries
// the allotment or assignee binds (they are immutable).
func (c *Client) UpdateAssignment(ctx context.Context, id string, disabledPlanIDs []string) (Assignment, error) {
	if id == "" {
		return Assignment{}, errors.New("update assignment: empty id")
	}
	body, err := updateBody(disabledPlanIDs)
	if err != nil {
		return Assignment{}, fmt.Errorf("update assignment %q: %w", id, err)
	}
	resp, status, err := c.do(ctx, http.MethodPatch, c.pathURL(Query{}, "admin", "cloudLicensing", "assignments", id), body, true)
	if err != nil {
		return Assignment{}, fmt.Errorf("update assignment %q: %w", id, err)
	}
	if status == http.StatusNoContent || len(resp) == 0 {
		return Assignment{ID: id, DisabledServicePlanIDs: slices.Clone(nonNil(disabledPlanIDs))}, nil
	}
	a, err := DecodeAssignment(resp)
	if err != nil {
		return Assignment{}, fmt.Errorf("update assignment %q: %w", id, err)
	}
	if a.ID == "" {
		a.ID = id
	}
	return a, nil
}

type updateAssignmentBody struct {
	Type                   string   `json:"@odata.type"`
	DisabledServicePlanIDs []string `json:"disabledServicePlanIds"`
}

// updateBody validates the plan ids and returns the JSON of the PATCH.
func updateBody(disabledPlanIDs []string) ([]byte, error) {
	if err := checkPlanIDs(disabledPlanIDs); err != nil {
		return nil, err
	}
	return json.Marshal(updateAssignmentBody{Type: assignmentType, DisabledServicePlanIDs: nonNil(disabledPlanIDs)})
}

// DeleteAssignment removes an assignment (204). An unknown id is an *Error
// with Status 404, except when an earlier attempt of the same call may
// have deleted it and its answer was lost: then it is success.
func (c *Client) DeleteAssignment(ctx context.Context, id string) error {
	if id == "" {
		return errors.New("delete assignment: empty id")
	}
	if _, _, err := c.do(ctx, http.MethodDelete, c.pathURL(Query{}, "admin", "cloudLicensing", "assignments", id), nil, true); err != nil {
		return fmt.Errorf("delete assignment %q: %w", id, err)
	}
	return nil
}

// ReprocessAssignments asks Graph to run licence processing for a user
// again, after the cause of an assignment error was fixed (200, no body).
// Running it twice is harmless, so it is retried like a read.
func (c *Client) ReprocessAssignments(ctx context.Context, userID string) error {
	if userID == "" {
		return errors.New("reprocess assignments: empty user id")
	}
	u := c.pathURL(Query{}, "users", userID, "cloudLicensing", "assignments", "reprocessAssignments")
	if _, _, err := c.do(ctx, http.MethodPost, u, nil, true); err != nil {
		return fmt.Errorf("reprocess assignments of user %q: %w", userID, err)
	}
	return nil
}
