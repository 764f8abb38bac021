package api

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/store"
)

// maxListedPerUser bounds the waiting rooms and errors one license status
// lists; a user in more than this many is a data problem, not a page.
const maxListedPerUser = 1000

// validateUser checks a user path parameter: an object id or a user
// principal name.
func validateUser(field, user string) error {
	if user == "" {
		return invalidArgument(field, "must not be empty")
	}
	if strings.Contains(user, "@") {
		return validateText(field, user)
	}
	return validateID(field, user)
}

// GetLicenseStatus implements seatledger.v1.UserService.GetLicenseStatus:
// what one user holds, waits for and is blocked on, from the mirror.
func (s *userService) GetLicenseStatus(ctx context.Context, req *seatledgerv1.GetLicenseStatusRequest) (*seatledgerv1.LicenseStatus, error) {
	if err := validateUser("user", req.GetUser()); err != nil {
		return nil, err
	}
	u, err := s.store.GetUser(ctx, req.GetUser(), time.Time{})
	if err != nil {
		return nil, err
	}
	// Four independent reads: at once, each on its own pooled connection.
	var (
		seats   []store.Seat
		waiting []store.WaitingMember
		errs    []store.AssignmentError
		lastRun store.SyncRun
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { seats, err = s.store.UserSeats(gctx, u.ID, time.Time{}); return err })
	g.Go(func() (err error) {
		waiting, err = s.store.ListWaitingMembers(gctx, store.ListWaitingMembersParams{PageSize: maxListedPerUser, MemberID: u.ID})
		return err
	})
	g.Go(func() (err error) {
		errs, err = s.store.ListAssignmentErrors(gctx, store.ListAssignmentErrorsParams{PageSize: maxListedPerUser, UserID: u.ID})
		return err
	})
	g.Go(func() error {
		if run, err := s.store.LastSuccessfulSyncRun(gctx); err == nil {
			lastRun = run
		}
		return nil // before the first run there is simply no observation time
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := &seatledgerv1.LicenseStatus{
		Name:              "users/" + u.ID + "/license-status",
		UserId:            u.ID,
		UserPrincipalName: u.UserPrincipalName,
		DisplayName:       u.DisplayName,
		Department:        u.Department,
		ObserveTime:       timeToProto(lastRun.StartedAt),
	}

	// A SKU held from two allotments costs two units: flag both.
	allotmentsBySKU := map[string]map[string]bool{}
	for _, st := range seats {
		if allotmentsBySKU[st.SKUID] == nil {
			allotmentsBySKU[st.SKUID] = map[string]bool{}
		}
		allotmentsBySKU[st.SKUID][st.AllotmentID] = true
	}
	type planKey struct{ sku, plan string }
	effective := map[planKey]*seatledgerv1.EffectiveService{}
	for _, st := range seats {
		seat := &seatledgerv1.HeldSeat{
			AllotmentId:            st.AllotmentID,
			SkuId:                  st.SKUID,
			SkuPartNumber:          st.SKUPartNumber,
			Source:                 seatledgerv1.SeatSource_SEAT_SOURCE_DIRECT,
			AssignmentId:           st.AssignmentID,
			GroupId:                st.GroupID,
			GroupDisplayName:       st.GroupDisplayName,
			DisabledServicePlanIds: st.DisabledPlanIDs,
			DuplicateSku:           st.SKUID != "" && len(allotmentsBySKU[st.SKUID]) > 1,
		}
		if st.GroupID != "" {
			seat.Source = seatledgerv1.SeatSource_SEAT_SOURCE_GROUP
		}
		out.Seats = append(out.Seats, seat)
		for _, sv := range st.Services {
			if slices.Contains(st.DisabledPlanIDs, sv.PlanID) {
				continue
			}
			k := planKey{st.SKUID, sv.PlanID}
			e := effective[k]
			if e == nil {
				e = &seatledgerv1.EffectiveService{PlanId: sv.PlanID, PlanName: sv.PlanName, SkuId: st.SKUID, SkuPartNumber: st.SKUPartNumber}
				effective[k] = e
			}
			if !slices.Contains(e.AllotmentIds, st.AllotmentID) {
				e.AllotmentIds = append(e.AllotmentIds, st.AllotmentID)
			}
		}
	}
	for _, e := range effective {
		out.EffectiveServices = append(out.EffectiveServices, e)
	}
	slices.SortFunc(out.EffectiveServices, func(a, b *seatledgerv1.EffectiveService) int {
		return cmp.Or(cmp.Compare(a.GetSkuPartNumber(), b.GetSkuPartNumber()), cmp.Compare(a.GetPlanName(), b.GetPlanName()), cmp.Compare(a.GetPlanId(), b.GetPlanId()))
	})
	now := time.Now()
	for _, w := range waiting {
		out.Waiting = append(out.Waiting, waitingMemberToProto(w, now))
	}
	for _, e := range errs {
		out.Errors = append(out.Errors, assignmentErrorToProto(e))
	}
	return out, nil
}
