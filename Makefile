# paradrop: build, test, cross-compile, benchmark and demo.
# Everything runs as root on Debian: chutes need namespaces, cgroups and OVS.

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# nethttpomithttp2 leaves net/http's bundled HTTP/2 out (0.15 MiB of the
# mipsle binary's gzip): our servers offer HTTP/1.1 only (api.Server's
# connection limits count connections), so neither side of any of our
# connections could use it.
TAGS    ?= nethttpomithttp2
BUILD   := CGO_ENABLED=0 $(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)'
# The gateways' builds (make cross, and so make package) add the router
# tag: it leaves out what runs on an operator's or a developer's machine,
# the fleet controller and the demo, with the packages only they import
# (0.17 MiB of the mipsle gzip); serve, its USP agent and /metrics stay.
# CROSS_TAGS=$(TAGS) keeps them in.
CROSS_TAGS ?= $(TAGS),router
XBUILD  := CGO_ENABLED=0 $(GO) build -trimpath -tags '$(CROSS_TAGS)' -ldflags '$(LDFLAGS)'

# Debian packages the tests and the demo use: busybox-static for chute
# rootfs, Open vSwitch for the chute network, chromium for the web UI tests,
# runc, lxc and os-ken as peers in the benchmarks; mosquitto as the USP
# agent's broker and protoc to decode its records independently.
DEBS := busybox-static openvswitch-switch e2fsprogs iproute2 ethtool nftables \
	util-linux iputils-ping chromium runc lxc python3-os-ken iperf3 \
	mosquitto protobuf-compiler zopfli

.PHONY: build cross deps test check demo bench clean package generate examples

build:
	$(BUILD) -o paradrop .
	@ls -l paradrop | awk '{printf "paradrop: %.1f MiB\n", $$5/1048576}'

# MIPS routers have the least flash (often 8 or 16 MiB for the whole
# firmware): their builds are made without inlining, which makes the binary
# 12% smaller and its gzip 17% smaller (make size). The price is CPU: a
# flow_mod's encoding and a USP GetTree take 2.2x and 1.9x the time
# (benchmarks under qemu-mipsel, bench/README.md "size"), on work the
# daemon does on a change, not while idle. MIPS_GCFLAGS= builds them as
# the others.
MIPS_GCFLAGS ?= all=-l

# The gateways of the paper and of today: i386 (ALIX), ARMv7, ARM64, MIPS
# (little-endian, and big-endian as most Atheros routers).
cross:
	mkdir -p dist
	GOOS=linux GOARCH=386 $(XBUILD) -o dist/paradrop-linux-386 .
	GOOS=linux GOARCH=arm GOARM=7 $(XBUILD) -o dist/paradrop-linux-armv7 .
	GOOS=linux GOARCH=arm64 $(XBUILD) -o dist/paradrop-linux-arm64 .
	GOOS=linux GOARCH=mipsle GOMIPS=softfloat $(XBUILD) -gcflags='$(MIPS_GCFLAGS)' -o dist/paradrop-linux-mipsle .
	GOOS=linux GOARCH=mips GOMIPS=softfloat $(XBUILD) -gcflags='$(MIPS_GCFLAGS)' -o dist/paradrop-linux-mips .
	@ls -l dist | awk 'NR>1 {printf "%-28s %.1f MiB\n", $$9, $$5/1048576}'

# OpenWrt packages of every `make cross` binary, in dist/openwrt: an .ipk
# for opkg (OpenWrt <= 23.05) and, when APK names apk-tools 3's `apk`, an
# .apk for OpenWrt 24.10 and later. Versions are OpenWrt's VERSION-rRELEASE;
# a git snapshot's is 0.COMMITS~HASH-r1.
PKG_VERSION    ?= 0.$(shell git rev-list --count HEAD 2>/dev/null || echo 0)~$(shell git rev-parse --short=8 HEAD 2>/dev/null || echo 0000)-r1
PKG_MAINTAINER ?= ParaDrop developers
PKG_LICENSE    ?= Apache-2.0
APK            ?= $(shell command -v apk 2>/dev/null)
# zopfli gzips the .ipk's data 4-5% smaller than gzip -9 (what opkg reads),
# for about 40 s of CPU per arch; ZOPFLI= uses Go's gzip -9.
ZOPFLI         ?= $(shell command -v zopfli 2>/dev/null)
PKG_TARGETS    := 386 armv7 arm64 mipsle mips

package: cross
	@apk="$(APK)"; if [ -n "$$apk" ] && ! "$$apk" --version 2>/dev/null | grep -q '^apk-tools 3'; then \
		echo "package: $$apk is not apk-tools 3: no .apk"; apk=; fi; \
	[ -n "$$apk" ] || echo "package: no apk-tools 3 (set APK=/path/to/apk): making .ipk only"; \
	[ -n "$(ZOPFLI)" ] || echo "package: no zopfli (apt-get install zopfli): .ipk data gzipped by Go's gzip -9"; \
	export SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 0); \
	rm -rf dist/openwrt; \
	for t in $(PKG_TARGETS); do \
		CGO_ENABLED=0 $(GO) run ./packaging/openwrt -target $$t -bin dist/paradrop-linux-$$t -out dist/openwrt \
			-version '$(PKG_VERSION)' -maintainer '$(PKG_MAINTAINER)' -license '$(PKG_LICENSE)' -apk "$$apk" -zopfli '$(ZOPFLI)' || exit 1; \
	done

# The size of what `make cross` ships: each stripped binary, its gzip -9,
# and the .ipk that `make package` makes of it (what a router downloads and
# what its flash holds until opkg unpacks it).
.PHONY: size
size: cross
	@printf '%-28s %10s %10s %10s\n' binary 'MiB' 'gzip MiB' '.ipk MiB'
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	for t in $(PKG_TARGETS); do \
		f=dist/paradrop-linux-$$t; \
		CGO_ENABLED=0 $(GO) run ./packaging/openwrt -target $$t -bin $$f -out $$tmp/$$t \
			-version '$(PKG_VERSION)' -maintainer '$(PKG_MAINTAINER)' -license '$(PKG_LICENSE)' -zopfli '$(ZOPFLI)' >/dev/null || exit 1; \
		printf '%-28s %10.2f %10.2f %10.2f\n' "$${f#dist/}" \
			"$$(stat -c %s "$$f" | awk '{print $$1/1048576}')" \
			"$$(gzip -9c "$$f" | wc -c | awk '{print $$1/1048576}')" \
			"$$(cat $$tmp/$$t/*.ipk | wc -c | awk '{print $$1/1048576}')"; \
	done

# The unit tests that need neither root nor what qemu-user lacks, built for
# each CPU `make cross` ships and run under qemu-user: mips is big endian,
# 386, arm and mips are 32-bit (see .ci/cross-test for what runs where).
CROSS_TEST_ARCHES ?= 386 arm arm64 mipsle mips

.PHONY: cross-test cross-test-deps
cross-test-deps:
	@if ! dpkg -s qemu-user-static >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-user-static; \
	fi

cross-test: cross-test-deps
	GO=$(GO) MIPS_GCFLAGS='$(MIPS_GCFLAGS)' .ci/cross-test $(CROSS_TEST_ARCHES)

deps:
	@if ! dpkg -s $(DEBS) >/dev/null 2>&1; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(DEBS); \
	fi

# The README's test command: every test, root ones included.
# CGO_ENABLED=0 as in make build: a health check's door is the test binary
# exec'ed inside a chute's root, where no dynamic loader is. examples first:
# EnvSense's tests install what it caches, and it refreshes apt's lists if
# they cannot name its packages; offline, those tests skip.
check: deps
	@$(MAKE) --no-print-directory examples || echo "check: apt cannot give EnvSense's packages: its tests skip"
	CGO_ENABLED=0 $(GO) vet ./...
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 15m ./...

test: check

# The sample chutes' packages, in dist/examples. EnvSense's image is made of
# Debian's python3 packages, which apt downloads (package lists refreshed
# once if it cannot name them) and which are kept in ~/.cache/paradrop.
examples: deps
	@CGO_ENABLED=0 $(GO) run ./examples/build -out dist/examples 2>/dev/null || \
		{ apt-get update -q && CGO_ENABLED=0 $(GO) run ./examples/build -out dist/examples; }

demo: deps build examples
	./paradrop demo

bench: deps build
	$(GO) run ./bench

clean:
	rm -rf paradrop dist bench/out

# The USP codec's Go code from its .proto files (checked in: a build needs
# neither tool). protoc-gen-go is built at the protobuf version of go.mod.
generate:
	@command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler"; exit 1; }
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	GOBIN=$$tmp $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go && \
	PATH=$$tmp:$$PATH $(GO) generate ./usp/codec

# The web UI's chart library, vendored so that builds, CI and an offline
# gateway need no npm and no CDN: run after changing UPLOT_VERSION and
# commit webui/vendor/.
UPLOT_VERSION ?= 1.6.32

.PHONY: webui-vendor
webui-vendor:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	(cd "$$tmp" && npm pack --silent uplot@$(UPLOT_VERSION) >/dev/null && tar -xzf uplot-$(UPLOT_VERSION).tgz) && \
	mkdir -p webui/vendor/uplot && \
	cp "$$tmp/package/dist/uPlot.iife.min.js" "$$tmp/package/dist/uPlot.min.css" "$$tmp/package/LICENSE" webui/vendor/uplot/ && \
	echo "uPlot $(UPLOT_VERSION) from npm" > webui/vendor/uplot/VERSION && \
	ls -l webui/vendor/uplot
