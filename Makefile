# vecnet: the two commands of the README are `make demo` and `make test`.
GO ?= go
BIN := bin

.PHONY: all build demo lab demo-vecnetd test k8s-node bench fuzz proto clean

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

# The main job: a 3-node Kubernetes lab on this machine (vecnet-lab demo):
# pods on vecnet, all-pairs ping, iperf3 next to the kernel's, then down.
demo: build
	bash hack/deps.sh
	bash hack/kube-build.sh kube-apiserver etcd kubectl kube-controller-manager
	$(BIN)/vecnet-lab demo

# Leave a lab running: bin/vecnet-lab status|kubectl|exec|down.
lab: build
	bash hack/deps.sh
	bash hack/kube-build.sh kube-apiserver etcd kubectl kube-controller-manager
	$(BIN)/vecnet-lab up

# The single-node dataplane demo (vecnetd alone, no Kubernetes).
demo-vecnetd: build
	bash hack/demo.sh

# The whole test suite (installs its own dependencies; run as root).
test:
	bash hack/test.sh

# vecnet as the only CNI of a real single-node Kubernetes (kubelet, containerd,
# kube-proxy): up, smoke checks, down. Root; first run ~10 min (builds), then
# ~1 min. make test runs it too.
k8s-node:
	bash hack/k8s-node/test.sh

# Benchmarks with ratios against the kernel (run as root, on a quiet machine).
bench: build
	bash hack/bench.sh

proto:
	bash hack/genproto.sh

clean:
	rm -rf $(BIN)
