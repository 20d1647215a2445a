# custom-sd: the two commands a newcomer needs are `make demo` and `make test`.

SHELL         := /bin/bash
GO            ?= go
CONSUL_VERSION = v1.20.1
CACHE_DIR     ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/custom-sd
CONSUL        ?= $(CACHE_DIR)/consul-$(CONSUL_VERSION)/consul
# Prometheus v3.16.0 is the Go module version v0.316.0.
PROMETHEUS_VERSION = v0.316.0
PROMETHEUS_DIR ?= $(CACHE_DIR)/prometheus-$(PROMETHEUS_VERSION)
PROMETHEUS     ?= $(PROMETHEUS_DIR)/prometheus
PROMTOOL       ?= $(PROMETHEUS_DIR)/promtool
# What make compare measures custom-sd against.
EXAMPLE_SD      ?= $(PROMETHEUS_DIR)/custom-sd-example
CONSUL_TEMPLATE_VERSION = v0.41.1
CONSUL_TEMPLATE ?= $(CACHE_DIR)/consul-template-$(CONSUL_TEMPLATE_VERSION)/consul-template

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
export CUSTOM_SD_PROMETHEUS = $(PROMETHEUS)
export CUSTOM_SD_PROMTOOL = $(PROMTOOL)

.PHONY: all build test ci-stress lint consul prometheus alternatives demo bench compare clean

all: build

## build: the custom-sd binary in bin/ (static: CGO_ENABLED=0; the Dockerfile runs this too)
BIN ?= bin/custom-sd
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/custom-sd

## consul: build the pinned Consul server into the cache (minutes the first time, seconds after)
consul: $(CONSUL)
$(CONSUL):
	@echo ">> building Consul $(CONSUL_VERSION) into $(CONSUL) (a few minutes the first time)"
	cd tools/consul && $(GO) build -o $(CONSUL) github.com/hashicorp/consul

## prometheus: build the pinned Prometheus server and promtool into the cache (about 5 minutes the first time)
prometheus: $(PROMETHEUS) $(PROMTOOL)
$(PROMETHEUS) $(PROMTOOL) &:
	@echo ">> building Prometheus $(PROMETHEUS_VERSION) and promtool into $(PROMETHEUS_DIR) (about 5 minutes the first time)"
	cd tools/prometheus && $(GO) build -ldflags '-X $(VERSION_PKG).Version=3.16.0' -o $(PROMETHEUS_DIR)/ \
		github.com/prometheus/prometheus/cmd/prometheus github.com/prometheus/prometheus/cmd/promtool

## alternatives: build the Prometheus custom-sd example and consul-template into the cache, for make compare
alternatives: $(EXAMPLE_SD) $(CONSUL_TEMPLATE)
$(EXAMPLE_SD):
	cd tools/prometheus && $(GO) build -o $(EXAMPLE_SD) github.com/prometheus/prometheus/documentation/examples/custom-sd/adapter-usage
$(CONSUL_TEMPLATE):
	cd tools/consul-template && $(GO) build -o $(CONSUL_TEMPLATE) github.com/hashicorp/consul-template

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt-clean:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

## test: every test, against real Consul agents and a real Prometheus
test: consul prometheus lint
	$(GO) test -race -count=1 ./...

## ci-stress: .ci/run in fresh clones of HEAD, several runs in a row, with the failed tests of each (CI_STRESS_ARGS='-n 10 --hog'; not part of make test)
CI_STRESS_ARGS ?=
ci-stress: consul prometheus
	scripts/ci-stress.sh $(CI_STRESS_ARGS)

## demo: the deploy/ topology as local processes: Consul with deploy/consul.json, custom-sd, and Prometheus reading its file
demo: build consul prometheus
	CONSUL=$(CONSUL) CUSTOM_SD=bin/custom-sd PROMETHEUS=$(PROMETHEUS) PROMTOOL=$(PROMTOOL) scripts/demo.sh

## bench: every scenario behind docs/performance.md, then the side-by-side comparison over HTTP and HTTPS, then ten jobs four ways; the tables go to $(BENCH_OUT) (over an hour)
BENCH_OUT ?= .bench/results.md
BENCH = $(GO) run ./bench -consul $(CONSUL) -custom-sd bin/custom-sd
COMPARE_SERVICES ?= 1000
COMPARE_INSTANCES ?= 3
# COMPARE_ARGS=-https runs make compare against the agent's HTTPS port.
COMPARE_ARGS ?=
COMPARE = $(BENCH) -services $(COMPARE_SERVICES) -instances $(COMPARE_INSTANCES) \
	-compare -example $(EXAMPLE_SD) -consul-template $(CONSUL_TEMPLATE) -prometheus $(PROMETHEUS) $(COMPARE_ARGS)
# Ten jobs in one custom-sd beside one job alone, ten custom-sd processes and ten consul_sd jobs in one Prometheus.
JOBS = $(BENCH) -services 1000 -instances 3 -samples 30 -jobs 10 -prometheus $(PROMETHEUS)
bench: build consul prometheus alternatives
	mkdir -p $(dir $(BENCH_OUT))
	set -o pipefail; { \
	  $(BENCH) -services 100 -instances 3 -samples 100 && \
	  $(BENCH) -services 1000 -instances 3 -samples 30 && \
	  $(BENCH) -services 1000 -instances 3 -samples 30 -https && \
	  $(BENCH) -services 10000 -instances 10 -samples 20 && \
	  $(BENCH) -services 10000 -instances 10 -samples 30 -https && \
	  $(COMPARE) && \
	  $(COMPARE) -https && \
	  $(JOBS); \
	} | tee $(BENCH_OUT).tmp
	mv $(BENCH_OUT).tmp $(BENCH_OUT)
	@echo "tables written to $(BENCH_OUT)"

## compare: only the side-by-side comparison, custom-sd beside the custom-sd example, consul-template and Prometheus's consul_sd on one catalog
compare: build consul prometheus alternatives
	$(COMPARE)

clean:
	rm -rf bin .demo
