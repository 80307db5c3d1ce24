# vecnet: the two commands of the README are `make demo` and `make test`.
GO ?= go
BIN := bin

.PHONY: all build demo test bench fuzz proto clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# The main job: a local demo of pods talking through vecnetd.
demo: build
	bash hack/demo.sh

# The whole test suite (installs its own dependencies; run as root).
test:
	bash hack/test.sh

# Benchmarks with ratios against the kernel (run as root, on a quiet machine).
bench: build
	bash hack/bench.sh

proto:
	bash hack/genproto.sh

clean:
	rm -rf $(BIN)
