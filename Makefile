# nsfs — see README.md.
GO ?= go

.PHONY: build run test clean

# build: the nsfs binary.
build:
	$(GO) build -o bin/nsfs ./cmd/nsfs

# run: mount the embedded default store (./.nsfs, with namespace default)
# at ./mnt in the foreground; Ctrl-C unmounts.
run: build
	mkdir -p mnt
	bin/nsfs mount --root $(CURDIR)/.nsfs $(CURDIR)/mnt

# test: formatting, vet, unit tests with the race detector, then the
# integration tests that mount for real (they need root and /dev/fuse).
test:
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then \
		echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race ./metadata/ ./blobs/ ./xattr/ ./fs/
	$(GO) test -count=1 -timeout 10m ./integration/

# clean: build output only; the store in ./.nsfs is data and stays.
clean:
	rm -rf bin
