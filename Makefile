# The commands the README names. Nothing clever lives here: each target is
# one command a developer could type by hand.

GO         ?= go
HTTP_RULES := proto/seatledger/v1/seatledger_http.yaml
PROTO      := $(shell find proto -name '*.proto' 2>/dev/null | sort)

.PHONY: run test generate lint bench tools

## run: start seatledger with zero configuration (embedded Postgres, built-in Graph simulator)
run:
	@scripts/install-deps postgres
	$(GO) run ./cmd/server -log-format=text

## test: every test, with the race detector, in random order, uncached
test:
	@scripts/install-deps postgres cgo
	$(GO) test -race -shuffle=on -count=1 -timeout=15m ./...

## generate: rewrite gen/ from proto/ with the plugin versions pinned in go.mod
generate: bin/.tools
	@scripts/install-deps protoc
	rm -f $$(find gen -name '*.pb.go' -o -name '*.pb.gw.go' -o -name '*.swagger.json' 2>/dev/null)
	mkdir -p gen/openapiv2
	PATH="$(CURDIR)/bin:$$PATH" protoc -I proto \
	  --go_out=gen --go_opt=paths=source_relative \
	  --go-grpc_out=gen --go-grpc_opt=paths=source_relative \
	  --grpc-gateway_out=gen --grpc-gateway_opt=paths=source_relative,grpc_api_configuration=$(HTTP_RULES) \
	  --openapiv2_out=gen/openapiv2 \
	  --openapiv2_opt=grpc_api_configuration=$(HTTP_RULES),allow_merge=true,merge_file_name=seatledger,disable_default_errors=false,openapi_naming_strategy=simple,openapi_configuration=proto/seatledger/v1/seatledger_openapi.yaml \
	  $(PROTO)

bin/.tools: go.mod go.sum
	GOBIN=$(CURDIR)/bin $(GO) install tool
	touch $@

## lint: the static checks CI runs
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "run gofmt -w"; exit 1; }
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

## bench: the tenant-scale benchmark harness (issue 6): prints the table, writes docs/BENCHMARKS.md (~6 min on 2 cores);
## QUICK=1 runs the quick mode (small tenants, under a minute, writes nothing). Micro-benchmarks:
## go test -run='^$$' -bench=. -benchmem ./internal/graph ./internal/store
bench:
	@scripts/install-deps postgres
	$(GO) run ./cmd/bench $(if $(QUICK),-quick)

## bench-quick: the quick mode of the harness, for everyday use
.PHONY: bench-quick
bench-quick:
	@$(MAKE) --no-print-directory bench QUICK=1
