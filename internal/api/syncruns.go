package api

import (
	"context"
	"strconv"

	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/store"
)

type syncService struct {
	seatledgerv1.UnimplementedSyncServiceServer
	store  *store.Store
	runner SyncRunner
}

// RunSync implements seatledger.v1.SyncService.RunSync: it runs a sync now
// and answers when the run has ended. A run that fails is still answered
// with its record (outcome FAILED and the reason); only a failure to run or
// record at all is an error.
func (s *syncService) RunSync(ctx context.Context, req *seatledgerv1.RunSyncRequest) (*seatledgerv1.SyncRun, error) {
	run, err := s.runner.RunNow(ctx, req.GetForce())
	if err != nil && run.ID == 0 {
		return nil, err
	}
	return syncRunToProto(run), nil
}

// ListSyncRuns implements seatledger.v1.SyncService.ListSyncRuns, newest
// run first.
func (s *syncService) ListSyncRuns(ctx context.Context, req *seatledgerv1.ListSyncRunsRequest) (*seatledgerv1.ListSyncRunsResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	after, err := decodePageToken(req.GetPageToken(), "")
	if err != nil {
		return nil, err
	}
	var beforeID int64
	if after != "" {
		if beforeID, err = strconv.ParseInt(after, 10, 64); err != nil || beforeID <= 0 {
			return nil, badPageToken(req.GetPageToken())
		}
	}
	runs, err := s.store.ListSyncRuns(ctx, size+1, beforeID)
	if err != nil {
		return nil, err
	}
	resp := &seatledgerv1.ListSyncRunsResponse{}
	if len(runs) > size {
		runs = runs[:size]
		resp.NextPageToken = encodePageToken(strconv.FormatInt(runs[size-1].ID, 10), "")
	}
	for _, r := range runs {
		resp.SyncRuns = append(resp.SyncRuns, syncRunToProto(r))
	}
	return resp, nil
}
