# oomlab: one Makefile for the harness, the guest binaries and the checks.
#   make lab    install what is missing, build, build the default kernel, run the quick suite
#   make test   unit tests + end-to-end tests (real kernel, real QEMU, real SSH)
SHELL := /bin/bash
GO    ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
BIN   := $(CURDIR)/bin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Debian packages the lab needs. The kernel source package (linux-source-6.12)
# is installed by oomlab itself, at the version pinned in patches/BASE.
APT_PKGS := qemu-system-x86 gcc libc6-dev make flex bison bc libelf-dev libssl-dev \
            cpio ccache perl xz-utils git patch jq

.PHONY: all deps build lab test unit e2e lint patches-check proof bench fuzz clean report-png test-trees soak

all: build

deps:
	@missing=$$(for p in $(APT_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing: $$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else \
	    echo "missing Debian packages; run:"; echo "  sudo apt-get install -y $$(echo $$missing)"; exit 1; \
	  fi; \
	fi
	@$(GO) mod download

build: deps
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/oomlab ./harness/cmd/oomlab
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/oomlab-agent ./harness/cmd/oomlab-agent
	@$(MAKE) --no-print-directory -C stressors OUT=$(BIN)/stressors

lab: build
	$(BIN)/oomlab build
	$(BIN)/oomlab run quick

unit: build
	$(GO) vet ./...
	$(GO) test -count=1 ./...

lint: deps
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# The end-to-end tests build the default kernel (cached in ~/.cache/oomlab),
# boot it under QEMU and run real scenarios.
e2e: build
	OOMLAB_E2E=1 OOMLAB_BIN=$(BIN) $(GO) test -count=1 -timeout 80m -v ./harness/e2e/

test: lint unit e2e

# Full check: git am + checkpatch --strict + a build after every patch (an
# hour on 2 cores). CI runs it with PATCHES_CHECK_FLAGS=--no-build.
patches-check:
	bash scripts/patches-check.sh $(PATCHES_CHECK_FLAGS)

# The measurements behind the patch messages: every scenario of the series
# on the kernels it compares, and the lockup detector self-tests (about 40
# minutes on 2 cores with the kernels cached, an hour more to build them).
proof: build
	$(BIN)/oomlab run patches selftest

# Throughput of the console scanner (MB/s, one core), where a boot's time
# goes (QEMU start -> first console byte -> /init -> agent ready -> SSH
# answered, median and p95, from the newest run of the boot scenario), then
# the sample rate of tetsuo-rt-idle (OOM -> freed samples per hour of guest
# time, per variant) from the newest run under results/. No guest boots
# unless OOMLAB_BENCH_RUN=1, which first runs the boot scenario 10 times
# and tetsuo-rt-idle once on BENCH_VARIANTS (default baseline).
BENCH_VARIANTS ?= baseline
bench:
	$(GO) test -run XXX -bench . -benchtime 3x ./harness/internal/console/
	@if [ "$(OOMLAB_BENCH_RUN)" = 1 ]; then \
	  $(MAKE) --no-print-directory build && \
	  { $(BIN)/oomlab run boot --variants $(BENCH_VARIANTS) --repeat 10 || test $$? = 1; } && \
	  { $(BIN)/oomlab run tetsuo-rt-idle --variants $(BENCH_VARIANTS) --repeat 1 || test $$? = 1; }; \
	fi
	$(GO) run ./harness/cmd/boottime -results $(CURDIR)/results boot
	$(GO) run ./harness/cmd/samplerate -results $(CURDIR)/results tetsuo-rt-idle

# oomlab, unchanged, on Debian's linux-source-6.1 beside the default 6.12
# (baseline kernels): quick, tetsuo-rt-idle and detector-selftest, a
# verdict table in results/trees-<date>.md. Builds kernels: not in CI.
#   make test-trees [TREES="6.1 6.12"] [TREE_SCENARIOS="..."]
test-trees: build
	bash scripts/test-trees.sh

# 100 idle boots per kernel (0 findings) and 10 provocations of each LKDTM
# detector class per kernel (every one detected); results/soak-<date>.md.
# About an hour on 2 cores (idle boots side by side): not in CI.
#   make soak [SOAK_VARIANTS=baseline,patched] [SOAK_BOOTS=100] [SOAK_PROVOKE=10]
soak: build
	bash scripts/soak.sh

fuzz:
	$(GO) test -run XXX -fuzz FuzzParser -fuzztime 3m ./harness/internal/console/

clean:
	rm -rf $(BIN)

# Look at a run's HTML report as a person would: write RUN/report.html
# (re-rendered by this oomlab) and a 1280 px wide screenshot of it,
# RUN/report.png, with headless Chromium (installed if missing and root).
#   make report-png RUN=results/<run-id> [PNG_HEIGHT=4000]
PNG_HEIGHT ?= 4000
report-png:
	@test -n "$(RUN)" -a -f "$(RUN)/run.json" || { echo "usage: make report-png RUN=results/<run-id> (a directory with run.json)"; exit 2; }
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing; run: sudo apt-get install -y chromium"; exit 1; fi; }
	$(GO) run -ldflags "-X main.version=$(VERSION)" ./harness/cmd/oomlab report "$(RUN)" --format html > "$(RUN)/report.html.tmp" && mv "$(RUN)/report.html.tmp" "$(RUN)/report.html"
	chromium --headless --disable-gpu --no-sandbox --hide-scrollbars --screenshot="$(abspath $(RUN))/report.png" \
	  --window-size=1280,$(PNG_HEIGHT) "file://$(abspath $(RUN))/report.html" 2>/dev/null
	@echo "$(RUN)/report.png"
