# Skein. `make run` starts a broker with embedded defaults; `make test` installs
# what the tests need and runs every test. CARGO_TARGET_DIR is honoured.
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
# One release build serves the tests, the benchmarks and the image: linked
# statically (the image is FROM scratch), for the host triple named explicitly
# so that build scripts and proc macros stay dynamic. The tests build with the
# same flags, so they reuse it instead of compiling everything a second time.
HOST_TRIPLE := $(shell rustc -vV | sed -n 's/^host: //p')
# Not SKEIN_*: the broker reads every SKEIN_* variable as a config key.
export RELEASE_RUSTFLAGS := -C target-feature=+crt-static
STATIC := RUSTFLAGS="$(RELEASE_RUSTFLAGS)" $(CARGO)
RELEASE_DIR := $(TARGET_DIR)/$(HOST_TRIPLE)/release
BROKER := $(RELEASE_DIR)/skein-broker
export SKEIN_BROKER_BIN := $(BROKER)
export SKEINCTL_BIN := $(RELEASE_DIR)/skeinctl
export SKEIN_OPERATOR_BIN := $(RELEASE_DIR)/skein-operator
# Extra broker settings for `make run`, e.g. ARGS="--set num.partitions=3".
ARGS ?=
# The container image `make image` builds (and e2e/ runs).
IMAGE ?= localhost/skein:dev
export SKEIN_IMAGE := $(IMAGE)

# A three-broker cluster on this machine: `make cluster` (N=4 for four).
.PHONY: run cluster build image print-skeinctl test test-unit test-clients chaos fuzz-check fuzz fuzz-seed compat-fast compat bench bench-txn bench-scale bench-operator bench-users bench-scaling lint fmt clean

run:
	$(CARGO) run --release -p skein-broker -- $(ARGS)

cluster: build
	SKEIN_BROKER_BIN=$(BROKER) ./scripts/local-cluster.sh

# The packages `make test` tests, built with their tests: the binaries and the
# tests then share one feature resolution (dev-dependencies included), so the
# test step does not compile the dependency tree a second time. (The operator's
# CEL dev-dependency turns on syn's `fold`, and with it nearly every crate
# would be rebuilt for the tests: minutes of an empty-cache `make test`.)
# image/build.sh builds the same set, so `make image` after it is a no-op.
PACKAGES := -p skein-model -p skein-client -p skein-console -p skeinctl -p skein-broker -p skein-operator
build:
	$(STATIC) build --release --target $(HOST_TRIPLE) $(PACKAGES) --bins --tests

# The container image, FROM scratch with static binaries built here (Dockerfile
# for `docker build .` where images can be pulled). Installs podman if missing.
image: build
	./image/build.sh $(IMAGE)

# The path of the skeinctl binary (`make -s print-skeinctl`).
print-skeinctl:
	@echo $(SKEINCTL_BIN)

test: build image
	./scripts/setup-test-env.sh
	./scripts/check-chart.sh
	./e2e/k8s/build-kubernetes.sh >/dev/null
	$(STATIC) test --release --target $(HOST_TRIPLE) $(PACKAGES)
	.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25
	$(MAKE) compat-fast

test-unit: build
	$(STATIC) test --release --target $(HOST_TRIPLE) $(PACKAGES)

test-clients: build image
	./scripts/setup-test-env.sh
	.venv/bin/python -m pytest -q -p no:cacheprovider --durations=25

# Fault runs longer than `make test` holds (e2e/faults: network namespaces,
# iptables, SIGSTOP/SIGKILL, a clock jump; root): CHAOS_RUNS random schedules of
# CHAOS_FAULTS faults each, results appended to docs/FAULTS.md.
CHAOS_RUNS ?= 3
CHAOS_FAULTS ?= 12
chaos: build
	./scripts/setup-test-env.sh
	.venv/bin/python e2e/faults/chaos.py --runs $(CHAOS_RUNS) --faults $(CHAOS_FAULTS) --report docs/FAULTS.md
	TXN_CHECK_RECORDS=6000 TXN_CHECK_FAULT_SECONDS=120 TXN_CHECK_WORKER_SECONDS=600 \
		.venv/bin/python -m pytest -q -s -p no:cacheprovider broker/tests/clients/test_txn_history.py

# Coverage-guided fuzzing (fuzz/, cargo-fuzz): each target briefly over its
# checked-in corpus, or a campaign of FUZZ_SECONDS per target.
FUZZ_SECONDS ?= 600
fuzz-check:
	./scripts/fuzz.sh check

fuzz:
	./scripts/fuzz.sh run $(FUZZ_SECONDS)

# Seed corpora from the recorded client frames, then minimise them.
fuzz-seed: build
	$(CARGO) test --release -p skein-broker --test fuzz -- --ignored write_fuzz_seed_corpora
	./scripts/fuzz.sh cmin

# librdkafka's own test suite against real brokers (compat/librdkafka/expected.txt):
# the fast subset in `make test`, every test in `make compat` (results in docs/),
# the security tests with a second build of the suite with TLS and SASL.
compat-fast: build
	compat/librdkafka/run.py --tests-dir "$$(./scripts/build-librdkafka-tests.sh)" --set fast

compat: build
	compat/librdkafka/run.py --tests-dir "$$(./scripts/build-librdkafka-tests.sh)" \
		--secure-tests-dir "$$(./scripts/build-librdkafka-tests.sh --secure)" --set full \
		--report docs/librdkafka-compat.md

# The operator on the local API-server tier: apply-to-Ready, spec change to
# applied, and RSS/CPU with 10 clusters and 1,000 Topics (bench-results/operator.json).
bench-operator: build image
	./scripts/setup-test-env.sh
	.venv/bin/python e2e/k8s/bench_operator.py

# KafkaUsers: apply -> authenticated, and the operator with USERS (1000) of them.
bench-users: build image
	./scripts/setup-test-env.sh
	.venv/bin/python e2e/k8s/bench_users.py

# Scaling 3 -> 5 brokers with BENCH_MIB MiB of data at BENCH_THROTTLE_MIB MiB/s, and
# the operator's RSS/CPU over a cluster of 1,000 partitions (bench-results/scaling.json).
bench-scaling: build image
	./scripts/setup-test-env.sh
	.venv/bin/python e2e/k8s/bench_scaling.py

bench: build
	$(TARGET_DIR)/release/skein-bench --broker $(BROKER) \
		--perf "$$(./scripts/build-rdkafka-performance.sh)" --out bench-results/latest.json
	$(MAKE) bench-txn

# Transactional produce (100 and 1,000 records per transaction) as a ratio to an
# idempotent producer, commit latency, read_committed vs read_uncommitted (bench-results/txn.json).
bench-txn: build
	./scripts/setup-test-env.sh
	SKEIN_BROKER_BIN=$(BROKER) .venv/bin/python bench/txn_bench.py

# SCALE_PARTITIONS partitions on one broker (RF=1) and on three (RF=3): creation,
# memory, open files, Metadata, snapshot, restarts (bench-results/scale.json).
SCALE_PARTITIONS ?= 100000
bench-scale: build
	$(TARGET_DIR)/release/skein-bench --broker $(BROKER) --only scale --scale-partitions $(SCALE_PARTITIONS) \
		--perf "$$(./scripts/build-rdkafka-performance.sh)" --out bench-results/scale.json

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf .venv broker/tests/clients/node/node_modules bench-results
