.PHONY: test build fuzz bench devnet

test: ## the whole test suite (what CI runs)
	./scripts/test

build:
	go build -o bin/thingnet ./cmd/thingnet

devnet:
	go run ./cmd/thingnet devnet

fuzz: ## every fuzz target for FUZZTIME each (default 30s)
	./scripts/fuzz

bench: ## ledger throughput next to the bare CometBFT kvstore baseline
	go run ./cmd/thingnet bench ledger
