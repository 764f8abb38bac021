package api

import seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"

// remediation holds, per assignment error code Graph reports, what the code
// means and what an admin does about it, written for the admin reading the
// license status of a user (the catalogue is shared/graph/ERRORS.md §1A).
// reprocess says whether reprocessAssignments must be called after the
// fix.
var remediation = map[string]struct {
	hint      string
	reprocess bool
}{
	"MissingDependency": {
		"A service plan of this SKU needs a plan from another SKU that the user does not have enabled (the message names both). " +
			"Give the user a license that includes the required plan, re-enable that plan on one of their assignments, " +
			"or disable the dependent plan on this SKU's assignment; then reprocess the user.", true},
	"DependencyViolation": {
		"A plan of this SKU is required by a plan of another license the user keeps, so removing it is blocked. " +
			"Keep the required plan through another assignment, or disable the dependent plan on the other assignment; then reprocess the user.", true},
	"CountViolation": {
		"The allotment had no free seat for this user. Free a seat (remove unused or duplicate assignments, including a second seat " +
			"of the same SKU in another allotment), move the user to an allotment of the same SKU with free seats, or buy more seats.", true},
	"MutuallyExclusiveViolation": {
		"A plan of this SKU cannot coexist with a plan the user already has from another license. Disable one of the two plans " +
			"on one of the assignments (PATCH its disabled plans) or remove the other license; then reprocess the user.", true},
	"MutuallyExclusiveServicePlans": {
		"A plan of this SKU cannot coexist with a plan the user already has from another license. Disable one of the two plans " +
			"on one of the assignments (PATCH its disabled plans) or remove the other license; then reprocess the user.", true},
	"ProhibitedInUsageLocationViolation": {
		"A service of this SKU may not be offered in the user's usage location. If the location is wrong, correct it on the user " +
			"(ISO country code, e.g. GB); otherwise disable the prohibited plan or remove the license. Then reprocess the user.", true},
	"UniquenessViolation": {
		"Licensing the user would give them an email proxy address another object already owns. Find the owner in Exchange Online " +
			"and remove the duplicate address (this cannot be done through Graph); then reprocess the user.", true},
	"Other": {
		"Another product from the same group failed for this user, so this one was not applied either. Fix the user's other license " +
			"error from the same group first; then reprocess the user.", true},
	"LicenseAssignmentAttributeConcurrencyException": {
		"Two groups assigned the same license at the same time; Microsoft Entra retries by itself. No action is needed unless it persists.", false},
}

// remediationFor returns the hint for an assignment error code; a code
// this version does not know gets a generic hint rather than nothing.
func remediationFor(code string) *seatledgerv1.Remediation {
	if r, ok := remediation[code]; ok {
		return &seatledgerv1.Remediation{Hint: r.hint, ReprocessAfterFix: r.reprocess}
	}
	return &seatledgerv1.Remediation{
		Hint: "Microsoft Graph reported an error code this version of seatledger does not describe. Read the message, fix the cause " +
			"(see Microsoft Entra's group-based licensing troubleshooting page), then reprocess the user.",
		ReprocessAfterFix: true,
	}
}
