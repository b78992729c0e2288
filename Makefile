# ChronosDB developer tasks. `make test` is what CI runs (through .ci/run).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip

.PHONY: install test test-fast debug bench bench-storage bench-codecs soak soak-raft sim clean

install:            ## compile the Cython extensions and install the package with test deps
	$(PIP) install -q --disable-pip-version-check -e ".[test]"

test: install       ## the whole test suite (README's test command), then 2,000 Raft simulation seeds
	$(PYTHON) -m pytest -q -p no:cacheprovider
	$(MAKE) sim

sim:                ## 2,000 seeds of the deterministic Raft simulation (1,000 on 3 nodes, 1,000 on 5)
	$(PYTHON) -m chronosdb.cluster.sim --seeds 1000 --start 100000 --nodes 3
	$(PYTHON) -m chronosdb.cluster.sim --seeds 1000 --start 200000 --nodes 5

test-fast:          ## tests without reinstalling (after `make install`)
	$(PYTHON) -m pytest -q -x

debug:              ## debug build: Cython annotate HTML, line tracing, C asserts, -O0 -g
	CHRONOSDB_DEBUG=1 $(PYTHON) setup.py build_ext --inplace --force

bench-storage:      ## bytes/value, codec speeds and engine write rate, beside InfluxDB and VictoriaMetrics
	$(PYTHON) bench/bench_storage.py

bench-codecs:
	$(PYTHON) bench/bench_codecs.py

bench: bench-codecs bench-storage

soak:               ## long crash-recovery soak: 200 SIGKILL cycles of a writer process
	CHRONOSDB_SOAK_CYCLES=200 $(PYTHON) -m pytest -q tests/test_crash_recovery.py -p no:cacheprovider

soak-raft:          ## 100,000 simulation seeds (50,000 on 3 nodes, 50,000 on 5), two processes
	$(PYTHON) -m chronosdb.cluster.sim --seeds 50000 --start 1000000 --nodes 3 & \
	$(PYTHON) -m chronosdb.cluster.sim --seeds 50000 --start 2000000 --nodes 5; b=$$?; wait $$!; a=$$?; \
	test $$a -eq 0 -a $$b -eq 0

clean:
	rm -rf build dist *.egg-info chronosdb/ext/*.c chronosdb/ext/*.so chronosdb/ext/*.html
