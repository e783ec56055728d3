package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxInitBytes bounds what each nsfs package may allocate before main:
// every CLI process runs every package's init, and a `nsfs pull` that
// finds every blob in the store takes a few milliseconds in all. A
// regexp compiled at package level takes tens of kilobytes (the Docker
// reference grammar took 158 KB and 0.2 ms); compile it at first use
// (sync.OnceValue), or match by hand.
const maxInitBytes = 8 << 10

// TestPackageInitsStayCheap runs this test binary again with
// GODEBUG=inittrace=1, which reports each package's init (the packages
// of the nsfs binary are all linked here), and holds nsfs's own to
// maxInitBytes.
func TestPackageInitsStayCheap(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s -test.run=^$: %v\n%s", os.Args[0], err, stderr.Bytes())
	}
	// "init github.com/nsfs/nsfs/client @9.7 ms, 0.023 ms clock, 2504 bytes, 12 allocs"
	initLine := regexp.MustCompile(`^init (\S+) @\S+ ms, \S+ ms clock, (\d+) bytes, \d+ allocs$`)
	seen := 0
	sc := bufio.NewScanner(&stderr)
	for sc.Scan() {
		m := initLine.FindStringSubmatch(sc.Text())
		if m == nil || !strings.HasPrefix(m[1], "github.com/nsfs/nsfs/") {
			continue
		}
		seen++
		if n, _ := strconv.Atoi(m[2]); n > maxInitBytes {
			t.Errorf("package %s allocates %d bytes at init, over %d: every nsfs process pays it before main", m[1], n, maxInitBytes)
		}
	}
	if seen == 0 {
		t.Fatalf("GODEBUG=inittrace=1 reported no init of an nsfs package:\n%s", stderr.Bytes())
	}
}
