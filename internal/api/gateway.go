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
// the API through conn: the Local of New, so that REST calls pass the same
// interceptors as gRPC calls without a second trip through gRPC (any
// connection to a seatledger gRPC server works too).
//
// metrics, when not nil, writes the Prometheus text exposition served at
// GET /metrics, which, like the health endpoints, needs no token.
func NewGateway(ctx context.Context, conn grpc.ClientConnInterface, ready func(context.Context) error, metrics func(io.Writer)) (http.Handler, error) {
	var gw *runtime.ServeMux
	gw = runtime.NewServeMux(runtime.WithIncomingHeaderMatcher(forwardHeader),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, newMemoJSON()), // JSON, large answers remembered; see jsonmemo.go
		runtime.WithMarshalerOption(csvMIME, newChargebackMarshaler()),   // chargeback files; see chargeback.go
		runtime.WithMiddlewares(checkInput(&gw)),                         // bad query strings and bodies; see restinput.go
		runtime.WithRoutingErrorHandler(routingError))                    // 405 with Allow, 404 naming the route
	var err error
	for _, err := range []error{
		seatledgerv1.RegisterSubscriptionServiceHandlerClient(ctx, gw, seatledgerv1.NewSubscriptionServiceClient(conn)),
		seatledgerv1.RegisterAllotmentServiceHandlerClient(ctx, gw, seatledgerv1.NewAllotmentServiceClient(conn)),
		seatledgerv1.RegisterAssignmentServiceHandlerClient(ctx, gw, seatledgerv1.NewAssignmentServiceClient(conn)),
		seatledgerv1.RegisterWaitingMemberServiceHandlerClient(ctx, gw, seatledgerv1.NewWaitingMemberServiceClient(conn)),
		seatledgerv1.RegisterAssignmentErrorServiceHandlerClient(ctx, gw, seatledgerv1.NewAssignmentErrorServiceClient(conn)),
		seatledgerv1.RegisterUserServiceHandlerClient(ctx, gw, seatledgerv1.NewUserServiceClient(conn)),
		seatledgerv1.RegisterChargebackServiceHandlerClient(ctx, gw, seatledgerv1.NewChargebackServiceClient(conn)),
		seatledgerv1.RegisterSyncServiceHandlerClient(ctx, gw, seatledgerv1.NewSyncServiceClient(conn)),
		seatledgerv1.RegisterAuditServiceHandlerClient(ctx, gw, seatledgerv1.NewAuditServiceClient(conn)),
	} {
		if err != nil {
			return nil, fmt.Errorf("gateway: register: %w", err)
		}
	}
	// The gateway's own endpoints are routes of the gateway too, so that
	// another method on them is a 405 with Allow like on the API's routes.
	// HEAD is served as GET (net/http drops the body), as it was when
	// these were routes of net/http's mux.
	handle := func(path string, h func(http.ResponseWriter, *http.Request)) {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			if err == nil {
				err = gw.HandlePath(method, path, func(w http.ResponseWriter, r *http.Request, _ map[string]string) { h(w, r) })
			}
		}
	}
	handle("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapiv2.JSON)
	})
	handle("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	handle("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := ready(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if metrics != nil {
		handle("/metrics", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
			metrics(w)
		})
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /v1/chargeback", chargebackQuery(gw)) // CSV and short forms; see chargeback.go
	mux.Handle("/", gw)
	return limitBodies(mux, maxBodyBytes), nil
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
