# piimage: the two commands the README promises are `make image` (or the
# go run line it stands for) and `make test`.
GO ?= go

.PHONY: image all-images test unit e2e bench bench-deps fmt vet

image:
	$(GO) run ./cmd/piimage build --role lbmaster

all-images:
	$(GO) run ./cmd/piimage build --all

# test runs every test, including the QEMU boot test (PIIMAGE_E2E=1) and
# the network-namespace tests (they need root and skip without it).
test: vet
	PIIMAGE_E2E=1 $(GO) test -count=1 -timeout 30m ./...

unit:
	$(GO) test ./...

e2e:
	PIIMAGE_E2E=1 $(GO) test -count=1 -v -run 'TestBootUnderQEMU|TestBootPi2UnderQEMU' ./cmd/piimage/cli/

# bench runs ours and the incumbents side by side and prints the ratios. It
# never fails the build: each benchmark reports what it could not run.
bench:
	-$(GO) run ./bench/image
	-$(GO) test -tags bench -run Compare -v ./image/squashfs/
	-$(GO) run ./bench/flash
	-$(GO) run ./bench/vip
	-$(GO) run ./bench/web
	-$(GO) run ./bench/lab
	-$(GO) run ./bench/balancer
	-$(GO) run ./bench/mirror

# bench-deps installs the incumbents the benchmarks compare against.
bench-deps:
	apt-get install -y $$(cat .ci/bench-packages.txt)

vet:
	@test -z "$$(gofmt -l .)" || (echo "gofmt needed:"; gofmt -l .; exit 1)
	$(GO) vet ./...
	# The init runs on 32-bit ARM (pi2) and arm64 (pi3, pi4): it must build there.
	GOOS=linux GOARCH=arm $(GO) vet ./cmd/init/ ./services/... ./overlays/
	GOOS=linux GOARCH=arm64 $(GO) build -o /dev/null ./cmd/init/

fmt:
	gofmt -w .
