# myelin build and test entry points. `make test` is what CI runs (.ci/run).
GO ?= go
BENCHCOUNT ?= 5
BENCHTIME ?= 1s

.PHONY: test test-unit test-interop deps vet bench fuzz build

## test: everything: vet, unit tests (with fuzz seed corpora), interop against libolm/goolm.
test: vet test-unit test-interop

build:
	CGO_ENABLED=0 $(GO) build ./...

vet:
	$(GO) vet ./...

test-unit:
	CGO_ENABLED=0 $(GO) build ./...
	$(GO) test -count=1 ./...

## deps: install what the interop tests need (idempotent; Debian packages).
deps:
	bash scripts/install-test-deps.sh

# -mod=mod: interop/ replaces myelin => ../, so its go.sum follows the root
# module's dependencies as they change.
test-interop: deps
	cd interop && $(GO) vet -mod=mod ./... && $(GO) test -mod=mod -count=1 ./...

## bench: side-by-side benchmarks (myelin vs goolm vs libolm), summarised by benchstat.
bench: deps
	bash scripts/bench.sh $(BENCHCOUNT) $(BENCHTIME)

## fuzz: run every fuzz target for FUZZTIME each (default 30s).
fuzz:
	bash scripts/fuzz.sh $${FUZZTIME:-30s}

## bench-server: myelind vs Dendrite v0.13.8 through cmd/myelin-bench, side by side (slow: not part of test). BENCHFLAGS scales it.
.PHONY: bench-server
bench-server:
	bash scripts/bench-server.sh $(BENCHFLAGS)
