package api

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
)

// Generations is what the read cache needs from the store: the mirror's
// generation, which moves at every change, and whether it is live (see
// store.Store.Generation).
type Generations interface {
	Generation() (gen uint64, live bool)
}

// cachedReads lists the reads whose answer depends only on the request and
// the mirror's state, so that it can be served again until the mirror
// changes. The function, when not nil, refreshes what depends on the time
// of the call in a copy of the cached answer. Reads that depend on the
// time otherwise (ListWaitingMembers filters by wait age,
// GetAllotmentHistory defaults its range to today) are not listed. Every
// table these answers come from notifies changes (migration 00009).
var cachedReads = map[string]func(proto.Message, time.Time) proto.Message{
	"/seatledger.v1.SubscriptionService/ListSubscriptions":        nil,
	"/seatledger.v1.AllotmentService/ListAllotments":              nil,
	"/seatledger.v1.AllotmentService/GetAllotment":                nil,
	"/seatledger.v1.AllotmentService/ListAllotmentAssignments":    nil,
	"/seatledger.v1.AllotmentService/ListAllotmentWaitingMembers": refreshWaitAges,
	"/seatledger.v1.AssignmentService/ListAssignments":            nil,
	"/seatledger.v1.AssignmentService/GetAssignment":              nil,
	"/seatledger.v1.AssignmentErrorService/ListAssignmentErrors":  nil,
	"/seatledger.v1.UserService/GetLicenseStatus":                 refreshWaitAges,
	// A chargeback is the same for the same mirror and prices: closed
	// days' seats come from the ledger, which equals counting them from
	// the history; open days' from the history itself.
	"/seatledger.v1.ChargebackService/GetChargeback": refreshGenerateTime,
	"/seatledger.v1.ChargebackService/ListPrices":    nil,
}

// cacheDays lists the cached reads whose answer depends on which day
// today is, with the day to add to their cache key: "" when this request's
// answer does not depend on it. An answer is then never served across
// midnight, even when the mirror did not change.
var cacheDays = map[string]func(req proto.Message, now time.Time) string{
	// A range reaching today counts today as far as it has gone, and one
	// reaching past today is cut at today.
	"/seatledger.v1.ChargebackService/GetChargeback": func(m proto.Message, now time.Time) string {
		req, ok := m.(*seatledgerv1.GetChargebackRequest)
		if !ok {
			return ""
		}
		tz := req.GetTimeZone()
		if tz == "" {
			tz = "UTC"
		}
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return "" // refused, and refusals are not kept
		}
		if today := now.In(loc).Format(time.DateOnly); req.GetTo() >= today {
			return today
		}
		return ""
	},
	// Without as_of, the prices valid today (a UTC day).
	"/seatledger.v1.ChargebackService/ListPrices": func(m proto.Message, now time.Time) string {
		if req, ok := m.(*seatledgerv1.ListPricesRequest); ok && req.GetAsOf() == "" && !req.GetIncludeHistory() {
			return now.UTC().Format(time.DateOnly)
		}
		return ""
	},
}

// refreshGenerateTime returns a copy of a chargeback report generated now.
func refreshGenerateTime(m proto.Message, now time.Time) proto.Message {
	m = proto.Clone(m)
	if r, ok := m.(*seatledgerv1.ChargebackReport); ok {
		r.GenerateTime = timeToProto(now)
	}
	return m
}

// refreshWaitAges returns m, or when it lists waiting members a copy whose
// wait ages are computed for now.
func refreshWaitAges(m proto.Message, now time.Time) proto.Message {
	waits := func(m proto.Message) []*seatledgerv1.WaitingMember {
		switch r := m.(type) {
		case *seatledgerv1.LicenseStatus:
			return r.GetWaiting()
		case *seatledgerv1.ListAllotmentWaitingMembersResponse:
			return r.GetWaitingMembers()
		}
		return nil
	}
	if len(waits(m)) == 0 {
		return m // nothing depends on the time: the cached answer as it is
	}
	m = proto.Clone(m)
	for _, w := range waits(m) {
		var since time.Time
		if w.GetWaitingSinceTime() != nil {
			since = w.GetWaitingSinceTime().AsTime()
		}
		w.WaitAge = waitAge(since, now)
	}
	return m
}

// readCache keeps the answers of cachedReads for one generation of the
// mirror, up to max bytes (their wire size): a change forgets them all,
// and when full it keeps what it has until then. Answers are shared
// between calls and never modified.
type readCache struct {
	gens Generations
	max  int
	now  func() time.Time // the clock of cacheDays and of refreshes

	mu      sync.Mutex
	gen     uint64
	entries map[string]proto.Message
	size    int

	hits, misses atomic.Uint64
}

// ReadCacheStats describes the read cache, for metrics.
type ReadCacheStats struct {
	Enabled      bool   // configured (Deps.ReadCacheBytes > 0)
	Live         bool   // serving: the store receives change notifications
	Hits, Misses uint64 // calls of cached reads answered from memory, and from the database
	Bytes        int    // wire size of the answers held
}

// stats reports c's figures; a nil c is a disabled cache.
func (c *readCache) stats() ReadCacheStats {
	if c == nil {
		return ReadCacheStats{}
	}
	_, live := c.gens.Generation()
	c.mu.Lock()
	size := c.size
	c.mu.Unlock()
	return ReadCacheStats{Enabled: true, Live: live, Hits: c.hits.Load(), Misses: c.misses.Load(), Bytes: size}
}

func newReadCache(gens Generations, maxBytes int) *readCache {
	return &readCache{gens: gens, max: maxBytes, now: time.Now, entries: map[string]proto.Message{}}
}

func (c *readCache) get(gen uint64, key string) proto.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return nil
	}
	return c.entries[key]
}

// put keeps resp, read while the generation was gen, unless the mirror
// has changed since.
func (c *readCache) put(gen uint64, key string, resp proto.Message) {
	size := len(key) + proto.Size(resp)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case gen < c.gen:
		return // read before a change this cache already knows of
	case gen > c.gen:
		c.gen, c.entries, c.size = gen, map[string]proto.Message{}, 0
	}
	if c.size+size > c.max {
		return
	}
	if _, ok := c.entries[key]; !ok {
		c.entries[key], c.size = resp, c.size+size
	}
}

// interceptor serves the cachedReads from the cache while the mirror's
// generation is live and unchanged, and keeps their successful answers. It
// runs after access control: a refused call never reaches it, and the
// answers of these reads do not depend on who asks.
func (c *readCache) interceptor() grpc.UnaryServerInterceptor {
	marshal := proto.MarshalOptions{Deterministic: true}
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		refresh, ok := cachedReads[info.FullMethod]
		m, isMsg := req.(proto.Message)
		if !ok || !isMsg {
			return handler(ctx, req)
		}
		gen, live := c.gens.Generation()
		if !live {
			return handler(ctx, req)
		}
		b, err := marshal.Marshal(m)
		if err != nil {
			return handler(ctx, req)
		}
		key := info.FullMethod + "\x00" + string(b)
		if day := cacheDays[info.FullMethod]; day != nil {
			key += "\x00" + day(m, c.now())
		}
		if resp := c.get(gen, key); resp != nil {
			c.hits.Add(1)
			if refresh != nil {
				return refresh(resp, c.now()), nil
			}
			return resp, nil
		}
		c.misses.Add(1)
		resp, err := handler(ctx, req)
		if err == nil {
			if pm, ok := resp.(proto.Message); ok {
				c.put(gen, key, pm)
			}
		}
		return resp, err
	}
}
