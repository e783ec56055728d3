# nsfs — see README.md.
GO ?= go

.PHONY: build run test clean

# build: the nsfs binary. urfave_cli_no_docs leaves out urfave/cli's
# man-page and markdown generators (blackfriday), whose package init
# every CLI process paid (about 1 ms of a 15 ms pull). netgo and osusergo
# take Go's own DNS resolver and user lookup instead of libc's, so that
# the binary is static: no dynamic loader, no libc, threads started
# without cgo (a CLI process starts about 13% faster; DNS names and user
# names come from /etc/hosts, /etc/resolv.conf and /etc/passwd, not from
# NSS modules). The integration harness (integration/harness_test.go)
# builds with the same tags.
NSFS_TAGS = urfave_cli_no_docs,netgo,osusergo
build:
	$(GO) build -tags $(NSFS_TAGS) -o bin/nsfs ./cmd/nsfs

# run: serve the store ./.nsfs (made on first use, with namespace default)
# at ./mnt in the foreground; Ctrl-C unmounts. ARGS go to nsfs mount
# (make run ARGS=--allow-other). nsfs mount makes ./mnt, and recovers it
# when a killed daemon left it a dead mount (where mkdir -p would fail,
# "Transport endpoint is not connected").
ARGS ?=
run: build
	bin/nsfs mount --root $(CURDIR)/.nsfs $(ARGS) $(CURDIR)/mnt

# test: formatting, vet, unit tests with the race detector, every fuzz
# target briefly (fuzz-smoke), then the integration tests that mount for
# real (they need root and /dev/fuse).
test:
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then \
		echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race ./metadata/ ./names/ ./errdefs/ ./mountinfo/ ./imagegraph/ ./blobs/ ./xattr/ ./fs/ ./client/ ./cmd/nsfs/ ./layerindex/...
	$(MAKE) --no-print-directory fuzz-smoke
	$(GO) test -count=1 -timeout 14m ./integration/

# fuzz: run every Go fuzz target for FUZZTIME each (seed corpora in
# <package>/testdata/fuzz/<Target>/; a failing input is added there).
# fuzz-smoke, part of test: 50,000 inputs each. A count, not a time: when
# a time-based run ends while a worker minimizes a new input, go test
# reports "context deadline exceeded" as a failure of the target.
FUZZTIME ?= 30s
FUZZ_TARGETS = \
	./names/:FuzzValidateNamespace ./names/:FuzzValidateRef ./names/:FuzzValidateLabel \
	./imagegraph/:FuzzParseManifest ./imagegraph/:FuzzPrefixScanner ./metadata/:FuzzDecodeImageRecord ./metadata/:FuzzImageRecordRoundTrip \
	./xattr/:FuzzKey ./xattr/:FuzzList ./xattr/:FuzzLabelRoundTrip ./xattr/:FuzzGet ./xattr/:FuzzParseFlags

.PHONY: fuzz fuzz-smoke
fuzz:
	@set -e; for target in $(FUZZ_TARGETS); do \
		echo "$(GO) test -run '^$$' -fuzz '^$${target#*:}$$' -fuzztime $(FUZZTIME) $${target%%:*}"; \
		$(GO) test -run '^$$' -fuzz "^$${target#*:}$$" -fuzztime $(FUZZTIME) $${target%%:*}; \
	done

fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZTIME=50000x

# clean: build output only; the store in ./.nsfs is data and stays.
clean:
	rm -rf bin

# bench: nsfs side by side with tmpfs and a bare in-memory go-fuse
# filesystem, one table of medians and ratios (root, /dev/fuse,
# docker-registry for the pull rows; about a minute). bench/main.go says
# how it measures; BENCHFLAGS=-h lists its flags.
.PHONY: bench
bench: build
	$(GO) build -o bin/barefs ./bench/barefs
	$(GO) build -o bin/nsfs-bench ./bench
	$(GO) build -o bin/fusetrace ./bench/fusetrace
	$(GO) test -c -o bin/metadata.test ./metadata
	bin/nsfs-bench $(BENCHFLAGS)
