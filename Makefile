# moat: the two commands a newcomer needs.
#   make run    install build deps, build, start moat on its built-in demo
#   make test   install build+test deps, build (release + ASan/UBSan), run ctest
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all build run test deps-build deps-test fuzz bench bench-slowloris clean

all: build

deps-build:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps-build $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS) --target moat

run: build
	$(BUILD)/moat run

test: deps-test $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j 3 --timeout 600

# Run each libFuzzer target (the HTTP/1 parser, the TLS 1.3 record layer,
# public-path matching, PROXY headers and forwarding chains, DNS and
# DuckDNS answers) for
# FUZZ_SECONDS; new inputs go to
# $(BUILD)-fuzz/corpus-<target>.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = h1 tls13 pathpat clientip dnsmsg duckdns
fuzz:
	@scripts/deps.sh fuzz
	cmake -S . -B $(BUILD)-fuzz -DCMAKE_C_COMPILER=clang -DMOAT_LIBFUZZER=ON -DMOAT_SANITIZERS=OFF >/dev/null
	cmake --build $(BUILD)-fuzz -j $(JOBS) $(addprefix --target fuzz_,$(FUZZ_TARGETS))
	for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD)-fuzz/corpus-$$t && \
	  $(BUILD)-fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) $(BUILD)-fuzz/corpus-$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# moat against nginx, HAProxy and Caddy; report in bench/results/ (bench/README.md).
bench:
	bench/proxy.sh

# moat under 10,000 slowloris connections; report in bench/results/slowloris-latest.md.
bench-slowloris:
	BENCH_SLOWLORIS=1 bench/proxy.sh

clean:
	rm -rf $(BUILD) $(BUILD)-fuzz
