package api

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/graph"
	"github.com/seatledger/seatledger/internal/store"
)

type allotmentService struct {
	seatledgerv1.UnimplementedAllotmentServiceServer
	store *store.Store
	graph *graph.Client
	log   *slog.Logger
}

// graphIDPattern accepts the id shapes Graph uses for cloud licensing
// objects (GUIDs and 52-character base32 strings) and nothing that could
// surprise a log reader or a URL.
var graphIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// guidPattern is the 8-4-4-4-12 hex form Graph uses for SKU ids.
var guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func validateID(field, id string) error {
	switch {
	case id == "":
		return invalidArgument(field, "must not be empty")
	case !graphIDPattern.MatchString(id):
		return invalidArgument(field, fmt.Sprintf("%q is not a Graph object id (letters, digits, '.', '_' and '-', at most 128), e.g. 3b0c7e52-11d4-8a6f-02e9-6c5d8f1a4b70", id))
	}
	return nil
}

// ListAllotments implements seatledger.v1.AllotmentService.ListAllotments.
func (s *allotmentService) ListAllotments(ctx context.Context, req *seatledgerv1.ListAllotmentsRequest) (*seatledgerv1.ListAllotmentsResponse, error) {
	if req.GetSkuId() != "" && !guidPattern.MatchString(req.GetSkuId()) {
		return nil, notGUID("sku_id", req.GetSkuId())
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	filter := "sku_id=" + req.GetSkuId()
	after, err := decodePageToken(req.GetPageToken(), filter)
	if err != nil {
		return nil, err
	}
	// One row more than asked tells whether a next page exists.
	rows, err := s.store.ListAllotments(ctx, store.ListAllotmentsParams{PageSize: size + 1, AfterID: after, SKUID: req.GetSkuId()})
	if err != nil {
		return nil, err
	}
	resp := &seatledgerv1.ListAllotmentsResponse{}
	if len(rows) > size {
		rows = rows[:size]
		resp.NextPageToken = encodePageToken(rows[size-1].ID, filter)
	}
	for _, a := range rows {
		resp.Allotments = append(resp.Allotments, allotmentToProto(a))
	}
	return resp, nil
}

// GetAllotment implements seatledger.v1.AllotmentService.GetAllotment.
func (s *allotmentService) GetAllotment(ctx context.Context, req *seatledgerv1.GetAllotmentRequest) (*seatledgerv1.Allotment, error) {
	if err := validateID("id", req.GetId()); err != nil {
		return nil, err
	}
	a, err := s.store.GetAllotment(ctx, req.GetId())
	if err != nil {
		return nil, err // mapErrors turns store.ErrNotFound into NOT_FOUND
	}
	return allotmentToProto(a), nil
}
