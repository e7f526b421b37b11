# Scrollback build entry points. `make test` is what CI runs (.ci/run).
SWIFT ?= swift
# Tests run in release mode: the randomized model tests and crash sweeps do millions of
# operations. Assertions inside the engine are `assert` (debug only); every check on bad
# input or bad bytes is an explicit throw and runs in both modes.
TEST_CONFIG ?= release

.PHONY: test build deps clean

deps:
	@if [ ! -f /usr/include/lz4.h ]; then \
		echo "liblz4-dev missing: installing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq liblz4-dev; \
	fi

build: deps
	$(SWIFT) build -c release

test: deps
	$(SWIFT) build --build-tests -c $(TEST_CONFIG) -Xswiftc -enable-testing
	$(SWIFT) test --skip-build -c $(TEST_CONFIG) -Xswiftc -enable-testing

clean:
	rm -rf .build
