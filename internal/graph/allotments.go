package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"
)

// Allotment is a Cloud Licensing allotment: a pool of licences of one SKU.
// Flags enums (assignableTo, tags) are split into their members, with
// "none" dropped, so the empty set means none. Enum strings the client does
// not know are kept as they came.
type Allotment struct {
	ID            string
	AllottedUnits int32
	ConsumedUnits int32
	AssignableTo  []string // e.g. ["user", "group"]
	Services      []Service
	SKUID         string
	SKUPartNumber string
	Subscriptions []Subscription
	Raw           json.RawMessage // the whole object as received, unknown properties included
}

// Service is a service plan an allotment offers.
type Service struct {
	PlanID       string
	PlanName     string
	AssignableTo []string
}

// Subscription is a commerce subscription backing an allotment.
type Subscription struct {
	SubscriptionID string
	State          string // active, warning, suspended, lockedOut, deleted, or a newer value
	// StartDate and NextLifecycleDate are YYYY-MM-DD (Graph sends either
	// that or a midnight timestamp such as 2025-09-30T00:00:00.000Z);
	// "" when absent.
	StartDate         string
	NextLifecycleDate string
	Tags              []string // e.g. ["trial"]
}

// AllotmentPage is one page of the allotments collection.
type AllotmentPage struct {
	Allotments []Allotment
	NextLink   string // @odata.nextLink; "" on the last page
}

// Allotments lists every allotment of the tenant, following @odata.nextLink
// verbatim until the last page. The sequence stops after the first error,
// which it yields with a zero Allotment.
func (c *Client) Allotments(ctx context.Context) iter.Seq2[Allotment, error] {
	return list(c, ctx, "allotments", c.resolve("/admin/cloudLicensing/allotments", c.pageQuery(Query{})),
		func(b []byte) ([]Allotment, string, error) {
			p, err := DecodeAllotmentPage(b)
			return p.Allotments, p.NextLink, err
		})
}

// skuTotalsApply groups allotments by SKU and sums their units, with the
// aliases of the documented example.
const skuTotalsApply = "groupby((skuId,skuPartNumber),aggregate(allottedUnits with sum as totalAllottedUnits," +
	"consumedUnits with sum as totalConsumedUnits))"

// SKUTotals lists the allotted and consumed units of the tenant summed per
// SKU, aggregated by Graph ($apply) rather than here.
func (c *Client) SKUTotals(ctx context.Context) iter.Seq2[SKUTotal, error] {
	return list(c, ctx, "SKU totals", c.resolve("/admin/cloudLicensing/allotments", Query{Apply: skuTotalsApply}),
		func(b []byte) ([]SKUTotal, string, error) {
			p, err := DecodeSKUTotalPage(b)
			return p.Totals, p.NextLink, err
		})
}

// GetAllotment reads one allotment by id. An unknown id is an *Error with
// Status 404.
func (c *Client) GetAllotment(ctx context.Context, id string) (Allotment, error) {
	if id == "" {
		return Allotment{}, errors.New("get allotment: empty id")
	}
	body, err := c.get(ctx, c.pathURL(Query{}, "admin", "cloudLicensing", "allotments", id))
	if err != nil {
		return Allotment{}, fmt.Errorf("get allotment %q: %w", id, err)
	}
	a, err := DecodeAllotment(body)
	if err != nil {
		return Allotment{}, fmt.Errorf("get allotment %q: %w", id, err)
	}
	return a, nil
}

// DecodeAllotmentPage decodes a page of the allotments collection,
// {"value":[…], "@odata.nextLink": …}.
func DecodeAllotmentPage(data []byte) (AllotmentPage, error) {
	items, next, _, err := decodePage(data, "allotment", decodeAllotmentObject)
	if err != nil {
		return AllotmentPage{}, err
	}
	return AllotmentPage{Allotments: items, NextLink: next}, nil
}

// DecodeAllotment decodes a single allotment, either at the top level (as
// OData sends entities) or wrapped as {"value": {…}} (as most
// documentation examples show it).
func DecodeAllotment(data []byte) (Allotment, error) {
	entity, err := unwrapEntity(data)
	if err != nil {
		return Allotment{}, fmt.Errorf("decode allotment: %w", err)
	}
	a, err := decodeAllotmentObject(entity)
	if err != nil {
		return Allotment{}, fmt.Errorf("decode allotment: %w", err)
	}
	return a, nil
}

// Wire types, written from the documentation and the examples in
// shared/graph/fixtures. Unknown properties are ignored here and kept in
// Allotment.Raw; @odata.type (with or without '#') is not needed.
type wireAllotment struct {
	ID            string             `json:"id"`
	AllottedUnits int32              `json:"allottedUnits"`
	AssignableTo  string             `json:"assignableTo"`
	ConsumedUnits int32              `json:"consumedUnits"`
	Services      []wireService      `json:"services"`
	SKUID         string             `json:"skuId"`
	SKUPartNumber string             `json:"skuPartNumber"`
	Subscriptions []wireSubscription `json:"subscriptions"`
}

type wireService struct {
	AssignableTo string `json:"assignableTo"`
	PlanID       string `json:"planId"`
	PlanName     string `json:"planName"`
}

type wireSubscription struct {
	SubscriptionID    string `json:"subscriptionId"`
	NextLifecycleDate string `json:"nextLifecycleDate"`
	StartDate         string `json:"startDate"`
	State             string `json:"state"`
	Tags              string `json:"tags"`
}

func decodeAllotmentObject(raw []byte) (Allotment, error) {
	var w wireAllotment
	if err := json.Unmarshal(raw, &w); err != nil {
		return Allotment{}, err
	}
	if w.ID == "" {
		return Allotment{}, errors.New("allotment has no id")
	}
	a := Allotment{
		ID:            w.ID,
		AllottedUnits: w.AllottedUnits,
		ConsumedUnits: w.ConsumedUnits,
		AssignableTo:  splitFlags(w.AssignableTo),
		SKUID:         w.SKUID,
		SKUPartNumber: w.SKUPartNumber,
		Raw:           json.RawMessage(bytes.Clone(raw)),
	}
	for _, s := range w.Services {
		a.Services = append(a.Services, Service{PlanID: s.PlanID, PlanName: s.PlanName, AssignableTo: splitFlags(s.AssignableTo)})
	}
	for _, s := range w.Subscriptions {
		start, err := normalizeDate(s.StartDate)
		if err != nil {
			return Allotment{}, fmt.Errorf("subscription %q: startDate: %w", s.SubscriptionID, err)
		}
		next, err := normalizeDate(s.NextLifecycleDate)
		if err != nil {
			return Allotment{}, fmt.Errorf("subscription %q: nextLifecycleDate: %w", s.SubscriptionID, err)
		}
		a.Subscriptions = append(a.Subscriptions, Subscription{
			SubscriptionID:    s.SubscriptionID,
			State:             s.State,
			StartDate:         start,
			NextLifecycleDate: next,
			Tags:              splitFlags(s.Tags),
		})
	}
	return a, nil
}

// splitFlags splits a flags enum ("user,group") into its members, dropping
// "none" and blanks; nil for the empty set.
func splitFlags(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" && f != "none" {
			out = append(out, f)
		}
	}
	return out
}

// normalizeDate turns an Edm.Date ("2025-09-30") or the timestamp form the
// examples use ("2025-09-30T00:00:00.000Z") into YYYY-MM-DD. The date is
// taken as written, not converted to another zone: it names a day.
func normalizeDate(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	if _, err := time.Parse(time.DateOnly, s); err == nil {
		return s, nil
	}
	if _, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return s[:len(time.DateOnly)], nil
	}
	return "", fmt.Errorf("%q is neither a date nor a timestamp", s)
}
