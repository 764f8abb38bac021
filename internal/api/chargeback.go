package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
	_ "time/tzdata" // time zones resolve on hosts without /usr/share/zoneinfo

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/auth"
	"github.com/seatledger/seatledger/internal/store"
)

// Chargeback: seat-days and their cost, and the prices behind them. The
// method is in docs/chargeback.md; the computation is store.Chargeback.

// csvContentType is the media type of CSV and FOCUS results.
const csvContentType = "text/csv; charset=utf-8"

var (
	// decimalPattern is a non-negative amount: digits, optionally a "."
	// and up to 10 more, no sign, exponent or separators.
	decimalPattern = regexp.MustCompile(`^[0-9]{1,15}(\.[0-9]{1,10})?$`)
	// currencyPattern is an ISO 4217 code.
	currencyPattern = regexp.MustCompile(`^[A-Z]{3}$`)
)

// parseDay validates a YYYY-MM-DD field.
func parseDay(field, v string, required bool) (string, error) {
	if v == "" {
		if required {
			return "", invalidArgument(field, "is required: a date (YYYY-MM-DD), e.g. 2026-12-01")
		}
		return "", nil
	}
	if _, err := time.Parse(time.DateOnly, v); err != nil {
		return "", notDay(field, v)
	}
	return v, nil
}

func (s *chargebackService) GetChargeback(ctx context.Context, req *seatledgerv1.GetChargebackRequest) (*seatledgerv1.ChargebackReport, error) {
	from, err := parseDay("from", req.GetFrom(), true)
	if err != nil {
		return nil, err
	}
	to, err := parseDay("to", req.GetTo(), true)
	if err != nil {
		return nil, err
	}
	if to < from {
		return nil, invalidArgument("to", fmt.Sprintf("%s is before from (%s); give to on or after from", to, from))
	}
	tz := req.GetTimeZone()
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil || strings.EqualFold(tz, "Local") || len(tz) > 64 {
		return nil, invalidArgument("time_zone", fmt.Sprintf("%q is not an IANA time zone name, e.g. Europe/Berlin", tz))
	}
	// Days after today have not happened: a range starting after today is
	// refused, one ending after it is cut at today and flagged (this month
	// so far is asked as the whole month).
	today := time.Now().In(loc).Format(time.DateOnly)
	if from > today {
		return nil, invalidArgument("from", fmt.Sprintf("%s is after today (%s in %s): only days up to today can be charged; the last day allowed is %s",
			from, today, tz, today))
	}
	var requestedTo string
	if to > today {
		requestedTo, to = to, today
	}
	if f, _ := time.Parse(time.DateOnly, from); f.AddDate(2, 0, 0).Before(mustDay(to)) {
		return nil, invalidArgument("to", fmt.Sprintf("the range %s to %s is longer than two years; ask for at most two years at a time, e.g. from=%s to=%s", from, to, from, f.AddDate(2, 0, -1).Format(time.DateOnly)))
	}
	for _, f := range []struct{ name, v string }{{"department", req.GetDepartment()}} {
		if err := validateText(f.name, f.v); err != nil {
			return nil, err
		}
	}
	if err := validateOptionalID("allotment_id", req.GetAllotmentId()); err != nil {
		return nil, err
	}
	if err := validateOptionalGUID("sku_id", req.GetSkuId()); err != nil {
		return nil, err
	}
	groupBy := req.GetGroupBy()
	var by string
	switch groupBy {
	case seatledgerv1.ChargebackGroupBy_CHARGEBACK_GROUP_BY_UNSPECIFIED, seatledgerv1.ChargebackGroupBy_CHARGEBACK_GROUP_BY_DEPARTMENT:
		groupBy, by = seatledgerv1.ChargebackGroupBy_CHARGEBACK_GROUP_BY_DEPARTMENT, store.GroupByDepartment
	case seatledgerv1.ChargebackGroupBy_CHARGEBACK_GROUP_BY_ALLOTMENT:
		by = store.GroupByAllotment
	case seatledgerv1.ChargebackGroupBy_CHARGEBACK_GROUP_BY_SKU:
		by = store.GroupBySKU
	default:
		return nil, invalidArgument("group_by", "unknown grouping")
	}
	format := req.GetFormat()
	switch format {
	case seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_UNSPECIFIED:
		format = seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_JSON
	case seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_JSON, seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_CSV,
		seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_FOCUS:
	default:
		return nil, invalidArgument("format", "unknown format")
	}
	policy := req.GetIdleSeatPolicy()
	var idle string
	switch policy {
	case seatledgerv1.IdleSeatPolicy_IDLE_SEAT_POLICY_UNSPECIFIED, seatledgerv1.IdleSeatPolicy_IDLE_SEAT_POLICY_UNALLOCATED:
		policy, idle = seatledgerv1.IdleSeatPolicy_IDLE_SEAT_POLICY_UNALLOCATED, store.IdleUnallocated
	case seatledgerv1.IdleSeatPolicy_IDLE_SEAT_POLICY_PROPORTIONAL:
		idle = store.IdleProportional
	case seatledgerv1.IdleSeatPolicy_IDLE_SEAT_POLICY_OWNER:
		idle = store.IdleOwner
	default:
		return nil, invalidArgument("idle_seat_policy", "unknown policy")
	}

	cb, err := s.store.Chargeback(ctx, store.ChargebackParams{
		From: from, To: to, TimeZone: tz, IdlePolicy: idle,
		Department: req.GetDepartment(), AllotmentID: req.GetAllotmentId(), SKUID: req.GetSkuId(),
		// Only FOCUS shows days; grouped rows are the same from lines
		// summed over a month's days, and far cheaper to price.
		SumDays: format != seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_FOCUS,
	})
	if err != nil {
		return nil, err
	}
	report := &seatledgerv1.ChargebackReport{
		From: from, To: to, TimeZone: tz, GroupBy: groupBy, Format: format, IdleSeatPolicy: policy,
		GenerateTime: timeToProto(time.Now()), RequestedTo: requestedTo, HistoryStartTime: timeToProto(cb.HistoryStart),
	}
	if cb.IncompleteHistory {
		report.Flags = append(report.Flags, seatledgerv1.ChargebackFlag_CHARGEBACK_FLAG_INCOMPLETE_HISTORY)
	}
	if requestedTo != "" {
		report.Flags = append(report.Flags, seatledgerv1.ChargebackFlag_CHARGEBACK_FLAG_RANGE_CUT_AT_TODAY)
	}
	switch format {
	case seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_FOCUS:
		if len(cb.UnpricedSKUs) > 0 {
			return nil, status.Errorf(codes.FailedPrecondition,
				"no price for some days of SKUs %s in the range; set them with SetPrice (PUT /v1/prices/{sku_id}) first",
				strings.Join(cb.UnpricedSKUs, ", "))
		}
		content, err := focusCSV(cb.Lines)
		if err != nil {
			return nil, err
		}
		report.ContentType, report.Content = csvContentType, content
	default:
		rows, totals := store.GroupChargeback(cb.Lines, by)
		if format == seatledgerv1.ChargebackFormat_CHARGEBACK_FORMAT_CSV {
			content, err := chargebackCSV(report, rows)
			if err != nil {
				return nil, err
			}
			report.ContentType, report.Content = csvContentType, content
			break
		}
		for _, r := range rows {
			report.Rows = append(report.Rows, chargebackRowToProto(r, report.Flags))
		}
		for _, m := range totals {
			report.Totals = append(report.Totals, &seatledgerv1.Money{CurrencyCode: m.Currency, Amount: m.Amount})
		}
	}
	return report, nil
}

// mustDay parses a validated YYYY-MM-DD.
func mustDay(v string) time.Time {
	t, _ := time.Parse(time.DateOnly, v)
	return t
}

// chargebackFlags returns the flags of a row: its own, then those of the
// whole report (range), which every row carries.
func chargebackFlags(r store.ChargebackRow, rangeFlags []seatledgerv1.ChargebackFlag) []seatledgerv1.ChargebackFlag {
	var flags []seatledgerv1.ChargebackFlag
	if r.Idle {
		flags = append(flags, seatledgerv1.ChargebackFlag_CHARGEBACK_FLAG_IDLE_SEATS)
	}
	if r.NoDepartment {
		flags = append(flags, seatledgerv1.ChargebackFlag_CHARGEBACK_FLAG_NO_DEPARTMENT)
	}
	if r.DuplicateSKU {
		flags = append(flags, seatledgerv1.ChargebackFlag_CHARGEBACK_FLAG_DUPLICATE_SKU)
	}
	if r.MissingPrice {
		flags = append(flags, seatledgerv1.ChargebackFlag_CHARGEBACK_FLAG_MISSING_PRICE)
	}
	return append(flags, rangeFlags...)
}

func chargebackRowToProto(r store.ChargebackRow, rangeFlags []seatledgerv1.ChargebackFlag) *seatledgerv1.ChargebackRow {
	return &seatledgerv1.ChargebackRow{
		Department: r.Department, AllotmentId: r.AllotmentID, SkuId: r.SKUID, SkuPartNumber: r.SKUPartNumber,
		SeatDays: r.SeatDays, Cost: &seatledgerv1.Money{CurrencyCode: r.Currency, Amount: r.Cost},
		Flags: chargebackFlags(r, rangeFlags),
	}
}

// chargebackCSVHeader are the plain CSV's columns (docs/chargeback.md).
var chargebackCSVHeader = []string{"period_start", "period_end", "time_zone", "department", "allotment_id", "sku_id",
	"sku_part_number", "seat_state", "seat_days", "currency", "amount", "flags"}

// chargebackCSV writes rows as the plain chargeback CSV.
func chargebackCSV(report *seatledgerv1.ChargebackReport, rows []store.ChargebackRow) ([]byte, error) {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(chargebackCSVHeader)
	for _, r := range rows {
		state := "assigned"
		if r.Idle {
			state = "idle"
		}
		var flags []string
		for _, f := range chargebackFlags(r, report.GetFlags()) {
			flags = append(flags, strings.ToLower(strings.TrimPrefix(f.String(), "CHARGEBACK_FLAG_")))
		}
		_ = w.Write([]string{report.GetFrom(), report.GetTo(), report.GetTimeZone(), csvText(r.Department),
			r.AllotmentID, r.SKUID, csvText(r.SKUPartNumber), state, fmt.Sprint(r.SeatDays), r.Currency, r.Cost,
			strings.Join(flags, ";")})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("write chargeback csv: %w", err)
	}
	return buf.Bytes(), nil
}

// csvText defuses directory text that a spreadsheet would run as a
// formula (a leading =, +, - or @) by prefixing a single quote.
func csvText(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// FOCUS export (docs/chargeback.md, /shared/finance/FOCUS.md §2): one
// Usage row per day, allotment, department and seat state.

// focusHeader are the FOCUS 1.2 columns seatledger emits: FOCUS columns
// alphabetically, then custom x_ columns alphabetically.
var focusHeader = []string{"BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodEnd",
	"BillingPeriodStart", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "ChargePeriodEnd",
	"ChargePeriodStart", "ConsumedQuantity", "ConsumedUnit", "ContractedCost", "ContractedUnitPrice", "EffectiveCost",
	"InvoiceIssuerName", "ListCost", "ListUnitPrice", "PricingCategory", "PricingQuantity", "PricingUnit", "ProviderName",
	"PublisherName", "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName", "ServiceSubcategory",
	"SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "Tags", "x_AllocationMethod", "x_SeatState", "x_SkuPartNumber"}

// FOCUS constants. The billing account and provider are not configurable
// yet; see docs/chargeback.md.
const (
	focusProvider           = "Microsoft"
	focusBillingAccountID   = "seatledger-microsoft-licensing"
	focusBillingAccountName = "Microsoft licensing (seatledger)"
	// focusQuantityScale is the number of decimal places of
	// PricingQuantity (licences ÷ days of the month, rounded half even).
	focusQuantityScale = 12
)

// focusServices maps SKU part numbers to a FOCUS ServiceName; others are
// "Microsoft 365".
var focusServices = map[string]string{
	"SPE_E5":                    "Microsoft 365 E5",
	"SPE_E3":                    "Microsoft 365 E3",
	"SPE_F1":                    "Microsoft 365 F3",
	"ENTERPRISEPACK":            "Office 365 E3",
	"ENTERPRISEPREMIUM":         "Office 365 E5",
	"STANDARDPACK":              "Office 365 E1",
	"O365_BUSINESS_PREMIUM":     "Microsoft 365 Business Standard",
	"SPB":                       "Microsoft 365 Business Premium",
	"AAD_PREMIUM":               "Microsoft Entra ID P1",
	"AAD_PREMIUM_P2":            "Microsoft Entra ID P2",
	"EMS":                       "Enterprise Mobility and Security E3",
	"EMSPREMIUM":                "Enterprise Mobility and Security E5",
	"INTUNE_A":                  "Microsoft Intune Plan 1",
	"POWER_BI_PRO":              "Power BI Pro",
	"POWER_BI_PREMIUM_PER_USER": "Power BI Premium Per User",
	"Microsoft_365_Copilot":     "Microsoft 365 Copilot",
	"ATP_ENTERPRISE":            "Microsoft Defender for Office 365 Plan 1",
	"WIN_DEF_ATP":               "Microsoft Defender for Endpoint P2",
	"CPC_E_2C_8GB_128GB":        "Windows 365 Enterprise",
	"TEAMS_ESSENTIALS_AAD":      "Microsoft Teams Essentials",
	"Microsoft_Teams_Premium":   "Microsoft Teams Premium",
	"FLOW_FREE":                 "Power Automate Free",
	"VISIOCLIENT":               "Visio Plan 2",
	"PROJECTPREMIUM":            "Project Plan 5",
}

// focusCategories maps each ServiceName to its one ServiceCategory and
// ServiceSubcategory; names not listed are productivity suites.
var focusCategories = map[string][2]string{
	"Microsoft Entra ID P1":                    {"Identity", "Identity and Access Management"},
	"Microsoft Entra ID P2":                    {"Identity", "Identity and Access Management"},
	"Enterprise Mobility and Security E3":      {"Management and Governance", "Endpoint Management"},
	"Enterprise Mobility and Security E5":      {"Management and Governance", "Endpoint Management"},
	"Microsoft Intune Plan 1":                  {"Management and Governance", "Endpoint Management"},
	"Power BI Pro":                             {"Analytics", "Business Intelligence"},
	"Power BI Premium Per User":                {"Analytics", "Business Intelligence"},
	"Microsoft 365 Copilot":                    {"AI and Machine Learning", "Generative AI"},
	"Microsoft Defender for Office 365 Plan 1": {"Security", "Threat Detection and Response"},
	"Microsoft Defender for Endpoint P2":       {"Security", "Threat Detection and Response"},
	"Windows 365 Enterprise":                   {"Compute", "End User Computing"},
}

func focusService(partNumber string) (name, category, subcategory string) {
	name = focusServices[partNumber]
	if name == "" {
		name = "Microsoft 365"
	}
	c, ok := focusCategories[name]
	if !ok {
		c = [2]string{"Business Applications", "Productivity and Collaboration"}
	}
	return name, c[0], c[1]
}

// decimal is an exact decimal: units × 10^-scale.
type decimal struct {
	units *big.Int
	scale int
}

// parseDecimal reads a non-negative decimal string such as "57.00".
func parseDecimal(s string) (decimal, error) {
	intPart, frac, _ := strings.Cut(s, ".")
	u, ok := new(big.Int).SetString(intPart+frac, 10)
	if !ok {
		return decimal{}, fmt.Errorf("%q is not a decimal", s)
	}
	return decimal{units: u, scale: len(frac)}, nil
}

func (d decimal) mul(o decimal) decimal {
	return decimal{units: new(big.Int).Mul(d.units, o.units), scale: d.scale + o.scale}
}

// String writes d with at least one fractional digit and no exponent, as
// FOCUS decimals must be.
func (d decimal) String() string {
	if d.scale == 0 {
		return d.units.String() + ".0"
	}
	return store.FormatUnits(d.units, d.scale)
}

// roundHalfEven returns x rounded half to even at scale places.
func roundHalfEven(x *big.Rat, scale int) decimal {
	pow := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)
	v := new(big.Rat).Mul(x, new(big.Rat).SetInt(pow))
	q, m := new(big.Int).DivMod(v.Num(), v.Denom(), new(big.Int))
	// Compare the remainder m/den with 1/2: 2m vs den.
	switch c := new(big.Int).Lsh(m, 1).Cmp(v.Denom()); {
	case c > 0, c == 0 && q.Bit(0) == 1:
		q.Add(q, big.NewInt(1))
	}
	return decimal{units: q, scale: scale}
}

// focusTime writes an instant as FOCUS Date/Time.
func focusTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// focusCSV writes lines as a FOCUS 1.2 CSV file. Every line must be priced.
func focusCSV(lines []store.ChargebackLine) ([]byte, error) {
	lines = slices.Clone(lines)
	slices.SortStableFunc(lines, func(a, b store.ChargebackLine) int {
		return cmp.Or(a.DayStart.Compare(b.DayStart), strings.Compare(a.AllotmentID, b.AllotmentID),
			cmp.Compare(boolInt(a.Idle), boolInt(b.Idle)), strings.Compare(a.Department, b.Department),
			strings.Compare(a.AllocationMethod, b.AllocationMethod))
	})
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(focusHeader)
	for _, l := range lines {
		unit, err := parseDecimal(l.UnitPrice)
		if err != nil {
			return nil, fmt.Errorf("focus: price of sku %q: %w", l.SKUID, err)
		}
		list, err := parseDecimal(l.ListUnitPrice)
		if err != nil {
			return nil, fmt.Errorf("focus: list price of sku %q: %w", l.SKUID, err)
		}
		qty := roundHalfEven(new(big.Rat).Quo(l.Seats, new(big.Rat).SetInt64(l.DaysInMonth)), focusQuantityScale)
		cost := unit.mul(qty).String()
		service, category, subcategory := focusService(l.SKUPartNumber)
		consumed, state, description := "0.0", "Idle", service+" idle licenses (allotted, not assigned)"
		if !l.Idle {
			consumed, state, description = l.Seats.Num().String()+".0", "Assigned", service+" licenses held by assignees"
		}
		tags := ""
		if l.Department != "" {
			b, err := json.Marshal(map[string]string{"department": l.Department})
			if err != nil {
				return nil, fmt.Errorf("focus: tags: %w", err)
			}
			tags = string(b)
		}
		_ = w.Write([]string{
			cost, focusBillingAccountID, focusBillingAccountName, l.Currency, focusTime(l.MonthEnd), focusTime(l.MonthStart),
			"Usage", "", description, "Recurring", focusTime(l.DayEnd), focusTime(l.DayStart),
			consumed, "License-Days", cost, unit.String(), cost,
			focusProvider, list.mul(qty).String(), list.String(), "Standard", qty.String(), "License-Months",
			focusProvider, focusProvider, "cloudLicensing/allotments/" + l.AllotmentID, "", "License Allotment",
			category, service, subcategory,
			l.SKUID, "Licenses", "", l.SKUID, tags, l.AllocationMethod, state, l.SKUPartNumber,
		})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return nil, fmt.Errorf("write focus csv: %w", err)
	}
	return buf.Bytes(), nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func priceToProto(p store.Price) *seatledgerv1.Price {
	out := &seatledgerv1.Price{
		Name: "prices/" + p.SKUID, SkuId: p.SKUID, SkuPartNumber: p.SKUPartNumber,
		MonthlyUnitPrice: &seatledgerv1.Money{CurrencyCode: p.Currency, Amount: p.MonthlyUnitPrice},
		ValidFrom:        p.ValidFrom, ValidTo: p.ValidTo,
		UpdateTime: timeToProto(p.UpdatedAt), UpdatedBy: p.UpdatedBy,
	}
	if p.MonthlyListUnitPrice != "" {
		out.MonthlyListUnitPrice = &seatledgerv1.Money{CurrencyCode: p.Currency, Amount: p.MonthlyListUnitPrice}
	}
	return out
}

// validateMoney checks a price field: an ISO 4217 code and a non-negative
// decimal amount.
func validateMoney(field string, m *seatledgerv1.Money) error {
	if !currencyPattern.MatchString(m.GetCurrencyCode()) {
		return invalidArgument(field+".currency_code", fmt.Sprintf("%q is not an ISO 4217 code in upper case, e.g. USD", m.GetCurrencyCode()))
	}
	if !decimalPattern.MatchString(m.GetAmount()) {
		return invalidArgument(field+".amount", fmt.Sprintf(`%q is not a non-negative decimal such as "57.00" (no sign, exponent or separators)`, m.GetAmount()))
	}
	return nil
}

func (s *chargebackService) SetPrice(ctx context.Context, req *seatledgerv1.SetPriceRequest) (*seatledgerv1.Price, error) {
	if !guidPattern.MatchString(req.GetSkuId()) {
		return nil, notGUID("sku_id", req.GetSkuId())
	}
	if req.GetMonthlyUnitPrice() == nil {
		return nil, invalidArgument("monthly_unit_price", "is required")
	}
	if err := validateMoney("monthly_unit_price", req.GetMonthlyUnitPrice()); err != nil {
		return nil, err
	}
	from, err := parseDay("valid_from", req.GetValidFrom(), true)
	if err != nil {
		return nil, err
	}
	p := store.Price{
		SKUID: req.GetSkuId(), Currency: req.GetMonthlyUnitPrice().GetCurrencyCode(),
		MonthlyUnitPrice: req.GetMonthlyUnitPrice().GetAmount(), ValidFrom: from, UpdatedBy: "anonymous",
	}
	if list := req.GetMonthlyListUnitPrice(); list != nil {
		if err := validateMoney("monthly_list_unit_price", list); err != nil {
			return nil, err
		}
		if list.GetCurrencyCode() != p.Currency {
			return nil, invalidArgument("monthly_list_unit_price.currency_code", "differs from monthly_unit_price's currency")
		}
		p.MonthlyListUnitPrice = list.GetAmount()
	}
	if err := s.checkSKUKnown(ctx, req); err != nil {
		return nil, err
	}
	if id, ok := auth.FromContext(ctx); ok {
		p.UpdatedBy = id.Subject
	}
	got, err := s.store.SetPrice(ctx, p)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "price set", "sku_id", got.SKUID, "valid_from", got.ValidFrom, "currency", got.Currency,
		"amount", got.MonthlyUnitPrice, "caller", got.UpdatedBy)
	return priceToProto(got), nil
}

// checkSKUKnown refuses a price for a SKU no allotment of the mirror has
// ever carried (most likely a mistyped id, which would price nothing)
// unless the request allows it.
func (s *chargebackService) checkSKUKnown(ctx context.Context, req *seatledgerv1.SetPriceRequest) error {
	if req.GetAllowUnknownSku() {
		return nil
	}
	known, err := s.store.SKUEverCarried(ctx, req.GetSkuId())
	if err != nil || known {
		return err
	}
	st := status.New(codes.FailedPrecondition, fmt.Sprintf("no allotment carries or ever carried SKU %s, so the price "+
		"would apply to nothing: check the id (GET /v1/allotments shows each allotment's skuId), or, to price a SKU "+
		`before it is bought, send "allowUnknownSku": true (allow_unknown_sku over gRPC)`, req.GetSkuId()))
	if d, err := st.WithDetails(&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
		Type: "SKU", Subject: req.GetSkuId(), Description: "no allotment of the mirror carries this SKU"}}}); err == nil {
		st = d
	}
	return st.Err()
}

func (s *chargebackService) ListPrices(ctx context.Context, req *seatledgerv1.ListPricesRequest) (*seatledgerv1.ListPricesResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	if err := validateOptionalGUID("sku_id", req.GetSkuId()); err != nil {
		return nil, err
	}
	asOf, err := parseDay("as_of", req.GetAsOf(), false)
	if err != nil {
		return nil, err
	}
	if req.GetIncludeHistory() {
		asOf = ""
	}
	filter := fmt.Sprintf("%s|%s|%t", req.GetSkuId(), asOf, req.GetIncludeHistory())
	after, err := decodePageToken(req.GetPageToken(), filter)
	if err != nil {
		return nil, err
	}
	afterSKU, afterFrom, _ := strings.Cut(after, "/")
	if afterFrom != "" {
		if _, err := parseDay("page_token", afterFrom, false); err != nil {
			return nil, badPageToken(req.GetPageToken())
		}
	}
	prices, err := s.store.ListPrices(ctx, store.ListPricesParams{
		SKUID: req.GetSkuId(), AsOf: asOf, IncludeHistory: req.GetIncludeHistory(),
		PageSize: size + 1, AfterSKU: afterSKU, AfterValidFrom: afterFrom,
	})
	if err != nil {
		return nil, err
	}
	resp := &seatledgerv1.ListPricesResponse{}
	if len(prices) > size {
		prices = prices[:size]
		last := prices[len(prices)-1]
		resp.NextPageToken = encodePageToken(last.SKUID+"/"+last.ValidFrom, filter)
	}
	for _, p := range prices {
		resp.Prices = append(resp.Prices, priceToProto(p))
	}
	return resp, nil
}

// REST: GET /v1/chargeback serves CSV and FOCUS results as files.

// csvMIME is the Accept value under which the gateway's CSV marshaler is
// registered.
const csvMIME = "text/csv"

// chargebackMarshaler is the gateway marshaler for Accept: text/csv. A
// ChargebackReport that carries a file is written as that file, with its
// content type; anything else (a JSON report, an error) is JSON as usual.
type chargebackMarshaler struct {
	runtime.Marshaler
}

func newChargebackMarshaler() runtime.Marshaler {
	return chargebackMarshaler{&runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}}
}

func reportFile(v any) (*seatledgerv1.ChargebackReport, bool) {
	r, ok := v.(*seatledgerv1.ChargebackReport)
	return r, ok && len(r.GetContent()) > 0
}

// Marshal writes a report's file as is.
func (m chargebackMarshaler) Marshal(v any) ([]byte, error) {
	if r, ok := reportFile(v); ok {
		return r.GetContent(), nil
	}
	return m.Marshaler.Marshal(v)
}

// ContentType is the report's file type, else JSON's.
func (m chargebackMarshaler) ContentType(v any) string {
	if r, ok := reportFile(v); ok {
		return r.GetContentType()
	}
	return m.Marshaler.ContentType(v)
}

// chargebackShortForms are the lower-case query values GET /v1/chargeback
// accepts besides the enum names, per parameter (both spellings).
var chargebackShortForms = map[string]map[string]string{
	"format": {
		"json": "CHARGEBACK_FORMAT_JSON", "csv": "CHARGEBACK_FORMAT_CSV", "focus": "CHARGEBACK_FORMAT_FOCUS",
	},
	"group_by": {
		"department": "CHARGEBACK_GROUP_BY_DEPARTMENT", "allotment": "CHARGEBACK_GROUP_BY_ALLOTMENT",
		"sku": "CHARGEBACK_GROUP_BY_SKU",
	},
	"idle_seat_policy": {
		"unallocated": "IDLE_SEAT_POLICY_UNALLOCATED", "proportional": "IDLE_SEAT_POLICY_PROPORTIONAL",
		"owner": "IDLE_SEAT_POLICY_OWNER",
	},
}

var chargebackParamAliases = map[string]string{"groupBy": "group_by", "idleSeatPolicy": "idle_seat_policy"}

// chargebackQuery wraps the gateway for GET /v1/chargeback: it accepts the
// short forms format=csv|focus|json, group_by=department|allotment|sku and
// idle_seat_policy=unallocated|proportional|owner, and turns Accept:
// text/csv into format=csv when no format is given. CSV and FOCUS results
// are then sent as the file itself (see chargebackMarshaler).
func chargebackQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		for name, forms := range chargebackShortForms {
			for _, key := range []string{name, aliasOf(name)} {
				if v := q.Get(key); v != "" {
					if long, ok := forms[strings.ToLower(v)]; ok {
						q.Set(key, long)
					}
				}
			}
		}
		format := q.Get("format")
		if format == "" && acceptsCSV(r.Header.Values("Accept")) {
			format = "CHARGEBACK_FORMAT_CSV"
			q.Set("format", format)
		}
		r2 := r.Clone(r.Context())
		r2.URL.RawQuery = q.Encode()
		switch format {
		case "CHARGEBACK_FORMAT_CSV", "CHARGEBACK_FORMAT_FOCUS", "2", "3":
			r2.Header.Set("Accept", csvMIME)
		default:
			r2.Header.Del("Accept")
		}
		next.ServeHTTP(w, r2)
	})
}

func aliasOf(name string) string {
	for alias, n := range chargebackParamAliases {
		if n == name {
			return alias
		}
	}
	return name
}

// acceptsCSV reports whether an Accept header asks for text/csv.
func acceptsCSV(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			if strings.EqualFold(strings.TrimSpace(mt), csvMIME) {
				return true
			}
		}
	}
	return false
}
