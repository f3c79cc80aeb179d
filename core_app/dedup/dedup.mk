# Duplicate check and search benchmark on synthetic national data.
# `make bench-dedup` loads 1,000,000 case files into their own database on the local cluster
# (once; later runs reuse it) and prints p50/p95/p99; `make bench-dedup N=5000000` for 5 million.
N ?= 1000000
BENCH_REQUESTS ?= 400

bench-dedup: deps ## duplicate check + search latency on N synthetic case files (default 1,000,000)
	$(BIN)/python loadtests/bench_dedup.py --cases $(N) --requests $(BENCH_REQUESTS)

.PHONY: bench-dedup
