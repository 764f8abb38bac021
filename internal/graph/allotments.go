package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"strconv"
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
	return func(yield func(Allotment, error) bool) {
		var q url.Values
		if c.pageSize > 0 {
			q = url.Values{"$top": {strconv.Itoa(c.pageSize)}}
		}
		next := c.resolve("/admin/cloudLicensing/allotments", q)
		seen := map[string]bool{}
		for next != "" {
			if seen[next] {
				yield(Allotment{}, fmt.Errorf("list allotments: next link %s repeats an earlier page", redact(next)))
				return
			}
			seen[next] = true
			body, err := c.get(ctx, next)
			if err != nil {
				yield(Allotment{}, fmt.Errorf("list allotments: %w", err))
				return
			}
			page, err := DecodeAllotmentPage(body)
			if err != nil {
				yield(Allotment{}, fmt.Errorf("list allotments: %w", err))
				return
			}
			for _, a := range page.Allotments {
				if !yield(a, nil) {
					return
				}
			}
			if page.NextLink != "" && !c.sameOrigin(page.NextLink) {
				yield(Allotment{}, fmt.Errorf("list allotments: next link %s leaves %s", redact(page.NextLink), c.base.Host))
				return
			}
			next = page.NextLink
		}
	}
}

// GetAllotment reads one allotment by id. An unknown id is an *Error with
// Status 404.
func (c *Client) GetAllotment(ctx context.Context, id string) (Allotment, error) {
	if id == "" {
		return Allotment{}, errors.New("get allotment: empty id")
	}
	body, err := c.get(ctx, c.resolve("/admin/cloudLicensing/allotments/"+url.PathEscape(id), nil))
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
	var w struct {
		Value    *[]json.RawMessage `json:"value"`
		NextLink string             `json:"@odata.nextLink"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return AllotmentPage{}, fmt.Errorf("decode allotment page: %w", err)
	}
	if w.Value == nil {
		return AllotmentPage{}, errors.New("decode allotment page: no value array")
	}
	page := AllotmentPage{NextLink: w.NextLink, Allotments: make([]Allotment, 0, len(*w.Value))}
	for i, raw := range *w.Value {
		a, err := decodeAllotmentObject(raw)
		if err != nil {
			return AllotmentPage{}, fmt.Errorf("decode allotment page: item %d: %w", i, err)
		}
		page.Allotments = append(page.Allotments, a)
	}
	return page, nil
}

// DecodeAllotment decodes a single allotment, either at the top level (as
// OData sends entities) or wrapped as {"value": {…}} (as most
// documentation examples show it).
func DecodeAllotment(data []byte) (Allotment, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return Allotment{}, fmt.Errorf("decode allotment: %w", err)
	}
	// An allotment has no "value" property, so a "value" object with no
	// "id" beside it can only be the wrapper.
	if v, ok := probe["value"]; ok && probe["id"] == nil {
		if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '{' {
			data = t
		}
	}
	a, err := decodeAllotmentObject(data)
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
