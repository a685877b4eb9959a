.PHONY: test build device-boards fuzz bench bench-netns bench-retention bench-growth soak soak-gateway bench-audit bench-explorer devnet e2e web-vendor web-vendor-check

test: ## the whole test suite (what CI runs)
	./scripts/test

build:
	go build -o bin/thingnet ./cmd/thingnet

device-boards: ## the minimal device program for every board architecture, stripped, into bin/ (docs/devices.md)
	@for t in arm:5 arm:6 arm:7 arm64: mipsle: riscv64:; do \
	  arch=$${t%%:*}; arm=$${t#*:}; out=bin/thingnet-device-linux-$$arch$${arm:+v$$arm}; \
	  GOOS=linux GOARCH=$$arch GOARM=$$arm GOMIPS=softfloat CGO_ENABLED=0 \
	    go build -tags grpcnotrace -trimpath -ldflags="-s -w" -o $$out ./cmd/thingnet-device || exit 1; \
	  ls -l $$out | awk '{printf "%-40s %5.1f MiB\n", $$9, $$5/1048576}'; \
	done

devnet:
	go run ./cmd/thingnet devnet

e2e: ## the end-to-end fault and attack scenarios against real node processes (docs/e2e.md)
	./scripts/e2e

fuzz: ## every fuzz target for FUZZTIME each (default 30s)
	./scripts/fuzz

bench: ## ledger throughput next to the bare CometBFT kvstore baseline
	go run ./cmd/thingnet bench ledger

bench-netns: ## the ledger and the kvstore baseline as deployed: 4 validator processes in network namespaces, pinned (root; docs/benchmarks.md)
	./scripts/bench-ledger-netns.sh

bench-retention: ## a gateway's disk under a retention period levels off (docs/benchmarks.md)
	THINGNET_BENCH=1 go test ./gateway -run TestRetentionDiskBound -count=1 -v

bench-growth: ## a gateway's disk per simulated day with and without archiving (docs/benchmarks.md)
	THINGNET_BENCH=1 go test ./gateway -run TestGrowth -count=1 -v -timeout 30m

SOAK_MINUTES ?= 5
soak: ## real nodes for an accelerated month: every node's disk stays under its bounds, by part (SOAK_MINUTES; docs/benchmarks.md)
	THINGNET_SOAK_MINUTES=$(SOAK_MINUTES) go test ./node -run TestSoak -count=1 -v -timeout 60m

soak-gateway: ## one gateway, 30 simulated days on a fake clock: its log stays under its bound (docs/benchmarks.md)
	THINGNET_SOAK_DAYS=30 go test ./gateway -run TestGrowth -count=1 -v -timeout 60m

bench-audit: ## export and offline verification of a 100,000-reading audit bundle (docs/benchmarks.md)
	go test ./auditbundle -run '^$$' -bench BenchmarkBundle -benchtime 1x -count=1 -timeout 30m

bench-explorer: ## open 100 sealed readings in the explorer's page (Chromium) next to Go (docs/benchmarks.md)
	go test ./web -run '^$$' -bench BenchmarkOpenSealed -benchtime 5x -count 5

web-vendor: ## rebuild web/assets/vendor/noble.js from web/vendor (needs npm; the build and tests do not)
	web/vendor/build.sh

web-vendor-check: ## check the committed explorer bundle is the build of web/vendor, byte for byte (needs npm)
	web/vendor/build.sh --check
