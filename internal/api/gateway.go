package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/seatledger/seatledger/gen/openapiv2"
	seatledgerv1 "github.com/seatledger/seatledger/gen/seatledger/v1"
	"github.com/seatledger/seatledger/internal/store"
)

// maxBodyBytes bounds every HTTP request body; larger bodies are refused
// before they reach a handler.
const maxBodyBytes = 1 << 20

// NewGateway returns the HTTP/JSON face of the API: the REST routes of
// proto/seatledger/v1/seatledger_http.yaml, GET /openapi.json, GET /healthz
// (the process is alive) and GET /readyz (ready reports why not). It calls
// the gRPC server at grpcAddr over a real loopback connection, so REST calls
// pass the same interceptors as gRPC calls. The returned function closes
// that connection.
//
// metrics, when not nil, writes the Prometheus text exposition served at
// GET /metrics, which, like the health endpoints, needs no token.
func NewGateway(ctx context.Context, grpcAddr string, ready func(context.Context) error, metrics func(io.Writer)) (http.Handler, func() error, error) {
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("gateway: dial grpc: %w", err)
	}
	gw := runtime.NewServeMux(runtime.WithIncomingHeaderMatcher(forwardHeader),
		runtime.WithMarshalerOption(csvMIME, newChargebackMarshaler())) // chargeback files; see chargeback.go
	for _, register := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		seatledgerv1.RegisterSubscriptionServiceHandler,
		seatledgerv1.RegisterAllotmentServiceHandler,
		seatledgerv1.RegisterAssignmentServiceHandler,
		seatledgerv1.RegisterWaitingMemberServiceHandler,
		seatledgerv1.RegisterAssignmentErrorServiceHandler,
		seatledgerv1.RegisterUserServiceHandler,
		seatledgerv1.RegisterChargebackServiceHandler,
		seatledgerv1.RegisterSyncServiceHandler,
		seatledgerv1.RegisterAuditServiceHandler,
	} {
		if err := register(ctx, gw, conn); err != nil {
			_ = conn.Close()
			return nil, nil, fmt.Errorf("gateway: register: %w", err)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapiv2.JSON)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /v1/chargeback", chargebackQuery(gw)) // CSV and short forms; see chargeback.go
	if metrics != nil {
		mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			metrics(w)
		})
	}
	mux.Handle("/", gw)
	return limitBodies(mux, maxBodyBytes), conn.Close, nil
}

// forwardHeader passes the HTTP headers the gRPC handlers read on as
// metadata: grpc-gateway's defaults, plus Idempotency-Key (as
// "idempotency-key") for CreateAssignment.
func forwardHeader(key string) (string, bool) {
	if strings.EqualFold(key, "Idempotency-Key") {
		return "idempotency-key", true
	}
	return runtime.DefaultHeaderMatcher(key)
}

// Readiness returns the /readyz check: Postgres answers, every embedded
// migration is applied, and synced reports the mirror has been synced.
func Readiness(st *store.Store, synced func(context.Context) error) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := st.Ping(ctx); err != nil {
			return errors.New("postgres is not reachable")
		}
		ok, err := st.SchemaCurrent(ctx)
		switch {
		case err != nil:
			return errors.New("cannot read the schema version")
		case !ok:
			return errors.New("migrations are not applied")
		}
		return synced(ctx)
	}
}

func limitBodies(h http.Handler, n int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > n {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{
				"code": 11, "message": fmt.Sprintf("request body is larger than %d bytes", n), "details": []any{},
			})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, n)
		h.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
