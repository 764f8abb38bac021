package api

import (
	"strings"

	"github.com/seatledger/seatledger/internal/auth"
)

// Roles that may call each kind of RPC. A caller needs any one of the
// roles listed; roles do not imply each other, so admin is named where it
// belongs.
var (
	readers = []auth.Role{auth.RoleReader, auth.RoleWriter, auth.RoleAdmin}
	writers = []auth.Role{auth.RoleWriter}
	finance = []auth.Role{auth.RoleFinance}
	admins  = []auth.Role{auth.RoleAdmin}
)

// Policy is the one place where each RPC declares the roles it needs.
// A method missing here is refused to everyone (deny by default), and
// TestPolicyCoversEveryRPC fails when a registered RPC has no entry.
var Policy = auth.Policy{
	"/seatledger.v1.SubscriptionService/ListSubscriptions": readers,

	"/seatledger.v1.AllotmentService/ListAllotments":              readers,
	"/seatledger.v1.AllotmentService/GetAllotment":                readers,
	"/seatledger.v1.AllotmentService/ListAllotmentAssignments":    readers,
	"/seatledger.v1.AllotmentService/ListAllotmentWaitingMembers": readers,
	"/seatledger.v1.AllotmentService/GetAllotmentHistory":         readers,
	"/seatledger.v1.AllotmentService/SetAllotmentOwner":           admins,

	"/seatledger.v1.AssignmentService/ListAssignments":  readers,
	"/seatledger.v1.AssignmentService/GetAssignment":    readers,
	"/seatledger.v1.AssignmentService/CreateAssignment": writers,
	"/seatledger.v1.AssignmentService/UpdateAssignment": writers,
	"/seatledger.v1.AssignmentService/DeleteAssignment": writers,

	"/seatledger.v1.WaitingMemberService/ListWaitingMembers":     readers,
	"/seatledger.v1.AssignmentErrorService/ListAssignmentErrors": readers,

	"/seatledger.v1.UserService/GetLicenseStatus": readers,
	"/seatledger.v1.UserService/ReprocessUser":    writers,

	"/seatledger.v1.ChargebackService/GetChargeback": finance,
	"/seatledger.v1.ChargebackService/ListPrices":    finance,
	"/seatledger.v1.ChargebackService/SetPrice":      finance,

	"/seatledger.v1.SyncService/RunSync":      admins,
	"/seatledger.v1.SyncService/ListSyncRuns": admins,

	"/seatledger.v1.AuditService/ListAuditEvents": admins,
}

// publicMethod reports whether method needs no token: the health service
// (load balancers probe it) and reflection (it only describes the API).
func publicMethod(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/") ||
		strings.HasPrefix(method, "/grpc.reflection.v1.ServerReflection/") ||
		strings.HasPrefix(method, "/grpc.reflection.v1alpha.ServerReflection/")
}
