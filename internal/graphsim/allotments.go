package graphsim

import "strings"

// Allotments on the wire, written from the documentation and the examples
// in shared/graph/fixtures (renderAllotment builds them).

const (
	allotmentType    = "#microsoft.graph.cloudLicensing.allotment"
	serviceType      = "microsoft.graph.cloudLicensing.service" // no '#', as the list example writes it
	subscriptionType = "#microsoft.graph.cloudLicensing.subscription"
)

// allotmentProperties are the structural properties of allotment, in the
// order Graph writes them.
var allotmentProperties = []string{"id", "allottedUnits", "assignableTo", "consumedUnits", "services", "skuId", "skuPartNumber", "subscriptions"}

// selectSuffix is the $select part of @odata.context, e.g. "(id,skuId)".
func selectSuffix(sel []string) string {
	if sel == nil {
		return ""
	}
	return "(" + strings.Join(sel, ",") + ")"
}

// flags renders a flags enum: comma-separated, "none" when empty.
func flags(fs []string) string {
	if len(fs) == 0 {
		return "none"
	}
	return strings.Join(fs, ",")
}

// wireDate renders a stored YYYY-MM-DD date as Graph sends an Edm.Date
// (subscription startDate and nextLifecycleDate are Edm.Date in Graph's
// metadata): OData JSON writes it as YYYY-MM-DD, and Microsoft's generated
// SDKs parse it strictly as a date. The documented examples'
// "2025-09-30T00:00:00.000Z" is an artefact of the examples.
func wireDate(d string) string { return d }
