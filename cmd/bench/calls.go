package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/licensing"
	"github.com/seatledger/seatledger/internal/pglocal"
)

// median returns the median of ds (which it sorts).
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// writePair is a user and an allotment of another SKU than the user's.
type writePair struct{ user, allotment string }

// writePairs finds n users and, for each, a user-assignable allotment
// whose SKU the user holds no seat of and with more than n free seats
// (licensing.FreeSeats, as CreateAssignment counts them): the smallest
// such allotment id.
func writePairs(ctx context.Context, pg *pglocal.Server, db string, n int) ([]writePair, error) {
	conn, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		return nil, fmt.Errorf("pick writes: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Users holding exactly one seat, with that seat's SKU.
	rows, err := conn.Query(ctx, `
		WITH cur AS (
		    SELECT s.assignee_id, a.sku_id
		    FROM assignment_versions s JOIN allotment_versions a ON a.id = s.allotment_id AND upper_inf(a.valid)
		    WHERE upper_inf(s.valid) AND s.assignee_type = 'user'),
		users AS (SELECT assignee_id FROM cur GROUP BY 1 HAVING count(*) = 1 ORDER BY 1 LIMIT $1)
		SELECT u.assignee_id, c.sku_id FROM users u JOIN cur c USING (assignee_id) ORDER BY 1`, n)
	if err != nil {
		return nil, fmt.Errorf("pick writes: %w", err)
	}
	type held struct{ user, sku string }
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (held, error) {
		var h held
		return h, r.Scan(&h.user, &h.sku)
	})
	if err != nil {
		return nil, fmt.Errorf("pick writes: %w", err)
	}
	rows, err = conn.Query(ctx, `
		SELECT id, sku_id, allotted_units, consumed_units FROM allotment_versions
		WHERE upper_inf(valid) AND 'user' = ANY (assignable_to) ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("pick writes: %w", err)
	}
	type allotment struct {
		id, sku            string
		allotted, consumed int32
	}
	allotments, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (allotment, error) {
		var a allotment
		return a, r.Scan(&a.id, &a.sku, &a.allotted, &a.consumed)
	})
	if err != nil {
		return nil, fmt.Errorf("pick writes: %w", err)
	}
	var pairs []writePair
	for _, u := range users {
		i := slices.IndexFunc(allotments, func(a allotment) bool {
			return a.sku != u.sku && int(licensing.FreeSeats(a.allotted, a.consumed)) > n
		})
		if i >= 0 {
			pairs = append(pairs, writePair{user: u.user, allotment: allotments[i].id})
		}
	}
	if len(pairs) < n {
		return nil, fmt.Errorf("pick writes: found %d users to assign, want %d", len(pairs), n)
	}
	return pairs, nil
}

// writeFigures compares seatledger's write proxy with a direct POST.
type writeFigures struct {
	n             int
	proxy, direct time.Duration // medians
	skipped       string        // why it was not measured
}

// benchWrites creates n assignments through seatledger's CreateAssignment
// and n directly with the Graph client (other users), alternating, and
// returns the medians.
func benchWrites(ctx context.Context, pg *pglocal.Server, db string, sim *simProcess, inst *instance, n int) (writeFigures, error) {
	f := writeFigures{n: n}
	pairs, err := writePairs(ctx, pg, db, 2*n)
	if err != nil {
		return f, err
	}
	gc, err := newGraphClient(sim)
	if err != nil {
		return f, err
	}
	// One direct call first: the token fetch is not part of a write.
	if _, err := gc.GetAllotment(ctx, pairs[0].allotment); err != nil {
		return f, fmt.Errorf("warm graph client: %w", err)
	}
	client := seatledgerv1.NewAssignmentServiceClient(inst.conn)
	var proxy, direct []time.Duration
	for i := range n {
		p := pairs[2*i]
		t0 := time.Now()
		_, err := client.CreateAssignment(ctx, &seatledgerv1.CreateAssignmentRequest{
			IdempotencyKey: "bench-" + strconv.Itoa(i),
			Assignee:       &seatledgerv1.CreateAssignmentRequest_User{User: p.user},
			Source:         &seatledgerv1.CreateAssignmentRequest_AllotmentId{AllotmentId: p.allotment},
		})
		if status.Code(err) == codes.Unimplemented {
			f.skipped = "CreateAssignment answers UNIMPLEMENTED in this tree"
			return f, nil
		}
		if err != nil {
			return f, fmt.Errorf("CreateAssignment: %w", err)
		}
		proxy = append(proxy, time.Since(t0))

		q := pairs[2*i+1]
		t0 = time.Now()
		if _, err := gc.CreateAssignment(ctx, graph.CreateAssignment{AllotmentID: q.allotment, AssigneeID: q.user, AssigneeType: "user"}); err != nil {
			return f, fmt.Errorf("direct create: %w", err)
		}
		direct = append(direct, time.Since(t0))
	}
	f.proxy, f.direct = median(proxy), median(direct)
	logf("writes: proxy p50 %v, direct p50 %v", f.proxy, f.direct)
	return f, nil
}

// valueFigures compares a user's license status from seatledger with the
// Graph calls a caller would make for the same answer.
type valueFigures struct {
	n                 int
	seatledger, graph time.Duration // medians
	graphRequests     int64         // per answer
}

// benchValue asks n times for user's license status through seatledger
// (gRPC) and through Graph: the user's assignments and usage rights, the
// waiting members of every allotment and the tenant's assignment errors,
// all requests in parallel (the best a caller could do).
func benchValue(ctx context.Context, sim *simProcess, inst *instance, user string, n int) (valueFigures, error) {
	f := valueFigures{n: n}
	gc, err := newGraphClient(sim)
	if err != nil {
		return f, err
	}
	var allotments []string
	for a, err := range gc.Allotments(ctx) {
		if err != nil {
			return f, err
		}
		allotments = append(allotments, a.ID)
	}
	users := seatledgerv1.NewUserServiceClient(inst.conn)
	drain := func(seq func(func(struct{}, error) bool)) error {
		for _, err := range seq {
			if err != nil {
				return err
			}
		}
		return nil
	}
	viaGraph := func() error {
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return drain(discard(gc.UserAssignments(gctx, user))) })
		g.Go(func() error { return drain(discard(gc.UserUsageRights(gctx, user))) })
		g.Go(func() error { return drain(discard(gc.AssignmentErrors(gctx))) })
		for _, id := range allotments {
			g.Go(func() error { return drain(discard(gc.AllotmentWaitingMembers(gctx, id))) })
		}
		return g.Wait()
	}
	if err := viaGraph(); err != nil { // fetches the token
		return f, fmt.Errorf("license status via Graph: %w", err)
	}
	var ours, theirs []time.Duration
	for range n {
		t0 := time.Now()
		if _, err := users.GetLicenseStatus(ctx, &seatledgerv1.GetLicenseStatusRequest{User: user}); err != nil {
			return f, fmt.Errorf("GetLicenseStatus: %w", err)
		}
		ours = append(ours, time.Since(t0))
		before := gc.Stats().Requests
		t0 = time.Now()
		if err := viaGraph(); err != nil {
			return f, fmt.Errorf("license status via Graph: %w", err)
		}
		theirs = append(theirs, time.Since(t0))
		f.graphRequests = gc.Stats().Requests - before
	}
	f.seatledger, f.graph = median(ours), median(theirs)
	logf("value: seatledger p50 %v, Graph p50 %v (%d requests)", f.seatledger, f.graph, f.graphRequests)
	return f, nil
}

// discard drops a sequence's values, keeping its errors.
func discard[T any](seq func(func(T, error) bool)) func(func(struct{}, error) bool) {
	return func(yield func(struct{}, error) bool) {
		for _, err := range seq {
			if !yield(struct{}{}, err) {
				return
			}
		}
	}
}
