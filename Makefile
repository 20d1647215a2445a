# custom-sd: the two commands a newcomer needs are `make demo` and `make test`.

GO            ?= go
CONSUL_VERSION = v1.20.1
CACHE_DIR     ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/custom-sd
CONSUL        ?= $(CACHE_DIR)/consul-$(CONSUL_VERSION)/consul

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH   ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
VERSION_PKG = github.com/prometheus/common/version
LDFLAGS = -s -w \
	-X $(VERSION_PKG).Version=$(VERSION) \
	-X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) \
	-X $(VERSION_PKG).BuildUser=$(shell id -un 2>/dev/null)@$(shell hostname 2>/dev/null) \
	-X $(VERSION_PKG).BuildDate=$(shell date -u +%Y%m%d-%H:%M:%S)

export CUSTOM_SD_CONSUL = $(CONSUL)

.PHONY: all build test lint consul demo bench clean

all: build

## build: the custom-sd binary in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/custom-sd ./cmd/custom-sd

## consul: build the pinned Consul server into the cache (minutes the first time, seconds after)
consul: $(CONSUL)
$(CONSUL):
	@echo ">> building Consul $(CONSUL_VERSION) into $(CONSUL) (a few minutes the first time)"
	cd tools/consul && $(GO) build -o $(CONSUL) github.com/hashicorp/consul

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-clean:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## test: every test, against real Consul agents
test: consul lint
	$(GO) test -race -count=1 ./...

## demo: a local Consul dev agent with deploy/consul.json, custom-sd beside it, and the file it writes
demo: build consul
	CONSUL=$(CONSUL) CUSTOM_SD=bin/custom-sd scripts/demo.sh

## bench: the benchmark scenarios behind docs/performance.md (about a quarter of an hour)
bench: build consul
	$(GO) run ./bench -consul $(CONSUL) -custom-sd bin/custom-sd -services 50 -instances 3 -samples 30 -idle 0
	$(GO) run ./bench -consul $(CONSUL) -custom-sd bin/custom-sd -services 100 -instances 3 -samples 100
	$(GO) run ./bench -consul $(CONSUL) -custom-sd bin/custom-sd -services 1000 -instances 3 -samples 30

clean:
	rm -rf bin .demo
