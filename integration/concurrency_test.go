package integration

// Concurrency: shell clients and syscall clients hammer one mount at the
// same names at once — rmdir of a namespace while images are written into
// it, two writers of one ref, rm while cp reads — and the daemon must
// neither deadlock nor panic, every tool must fail only with the errors
// docs/design.md lists, and the store must be consistent afterwards.

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nsfs/nsfs/client"
	"golang.org/x/sys/unix"
)

var concurrencySeed = flag.Int64("concurrency.seed", 0, "seed of the concurrency test's scripts (0: from the clock)")

const (
	concurrencyShells   = 8
	concurrencyShellOps = 250 // tool runs per shell client
	concurrencyCallers  = 8
	concurrencyCalls    = 600 // operations per syscall client
	concurrencyDeadline = 45 * time.Second
)

// The names every client fights over.
var (
	raceNamespaces = []string{"c0", "c1", "c2"}
	raceRefs       = []string{"r0", "r1", "lib/r2", "lib/r3"}
)

// toolErrorsThatAreBugs are messages no operation in docs/design.md answers:
// an unmapped error, a dead or hung daemon, an interrupted request.
var toolErrorsThatAreBugs = []string{
	"Input/output error", "Function not implemented", "Transport endpoint", "Software caused connection abort",
	"Interrupted system call", "Operation not supported", "Stale file handle", "Bad address",
}

// unexpectedErrno: errnos no operation in docs/design.md answers.
var unexpectedErrno = map[syscall.Errno]bool{
	syscall.EIO: true, syscall.ENOSYS: true, syscall.ENOTCONN: true, syscall.ECONNABORTED: true,
	syscall.EINTR: true, syscall.ENOTSUP: true, syscall.ESTALE: true, syscall.EFAULT: true,
}

// raceFiles are the sources the clients copy from: the pool's blobs and
// manifests, and loose blobs.
type raceFiles struct {
	dir       string
	images    []testImage
	loose     []blob
	manifests []string // paths of manifest files
}

func newRaceFiles(t *testing.T) raceFiles {
	rf := raceFiles{dir: t.TempDir()}
	for i := 0; i < 5; i++ {
		rf.images = append(rf.images, newImage(int64(7000+i), "amd64", 200+i, 5000*(i%3)+1))
	}
	for i := 0; i < 6; i++ {
		rf.loose = append(rf.loose, blob{data: randomBytes(int64(7100+i), 1000+i*300)})
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(rf.dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for i, img := range rf.images {
		for _, b := range append([]blob{img.config}, img.layers...) {
			write(b.hex(), b.data)
		}
		rf.manifests = append(rf.manifests, write(fmt.Sprintf("manifest%d.json", i), img.manifest.data))
	}
	for _, b := range rf.loose {
		write(b.hex(), b.data)
	}
	return rf
}

// shellScript is a random sequence of tool runs on the shared names. Each
// line's errors go to stderr, which the test reads; `|| true` keeps going.
func (rf raceFiles) shellScript(rng *rand.Rand, n int) string {
	var b strings.Builder
	pick := func(s []string) string { return s[rng.Intn(len(s))] }
	for i := 0; i < n; i++ {
		ns, ns2, ref, ref2 := pick(raceNamespaces), pick(raceNamespaces), pick(raceRefs), pick(raceRefs)
		img := rf.images[rng.Intn(len(rf.images))]
		imgs := "ns/" + ns + "/images/"
		var line string
		switch r := rng.Intn(100); {
		case r < 8:
			line = "mkdir ns/" + ns
		case r < 14:
			line = "rmdir ns/" + ns
		case r < 16:
			line = "rm -rf ns/" + ns
		case r < 24:
			line = fmt.Sprintf("setfattr -n user.k%d -v v%d ns/%s", rng.Intn(3), rng.Intn(3), ns)
		case r < 27:
			line = fmt.Sprintf("setfattr -x user.k%d ns/%s", rng.Intn(3), ns)
		case r < 45:
			// A pull: the blobs it cannot see, then the manifest.
			var parts []string
			for _, bl := range append([]blob{img.config}, img.layers...) {
				p := "ns/" + ns + "/blobs/sha256/" + bl.hex()
				parts = append(parts, fmt.Sprintf("{ test -e %s || cp %s %s; }", p, filepath.Join(rf.dir, bl.hex()), p))
			}
			parts = append(parts, "mkdir -p "+imgs+"lib", "cp "+rf.manifests[rng.Intn(len(rf.manifests))]+" "+imgs+ref)
			line = strings.Join(parts, " && ")
		case r < 52:
			line = fmt.Sprintf("mkdir -p ns/%s/images/lib && cp %s%s ns/%s/images/%s", ns2, imgs, ref, ns2, ref2)
		case r < 59:
			line = "mv " + imgs + ref + " " + imgs + ref2
		case r < 64:
			line = "ln " + imgs + ref + " " + imgs + ref2
		case r < 72:
			line = "rm " + imgs + ref
		case r < 76:
			bl := rf.loose[rng.Intn(len(rf.loose))]
			line = fmt.Sprintf("cp %s ns/%s/blobs/sha256/%s", filepath.Join(rf.dir, bl.hex()), ns, bl.hex())
		case r < 80:
			line = "rm ns/" + ns + "/blobs/sha256/" + pick(append(rf.blobHexes(), img.manifest.hex()))
		case r < 84:
			line = fmt.Sprintf("setfattr -n user.note -v n%d %s%s", rng.Intn(3), imgs, ref)
		case r < 92:
			line = "cat " + imgs + ref + " > /dev/null"
		default:
			line = "ls -lR ns/" + ns + " > /dev/null"
		}
		b.WriteString(line + " || true\n")
	}
	b.WriteString("echo finished\n")
	return b.String()
}

func (rf raceFiles) blobHexes() []string {
	var out []string
	for _, img := range rf.images {
		for _, b := range append([]blob{img.config}, img.layers...) {
			out = append(out, b.hex())
		}
	}
	for _, b := range rf.loose {
		out = append(out, b.hex())
	}
	return out
}

// syscallClient performs n random operations with direct syscalls and
// returns the ones that failed with an errno no operation should answer.
func (rf raceFiles) syscallClient(mnt string, rng *rand.Rand, n int) []string {
	var bad []string
	check := func(what string, err error) {
		var errno syscall.Errno
		if errors.As(err, &errno) && unexpectedErrno[errno] {
			bad = append(bad, fmt.Sprintf("%s: %v (%s)", what, err, unix.ErrnoName(errno)))
		}
	}
	pick := func(s []string) string { return s[rng.Intn(len(s))] }
	for i := 0; i < n; i++ {
		ns, ref, ref2 := pick(raceNamespaces), pick(raceRefs), pick(raceRefs)
		dir := filepath.Join(mnt, "ns", ns)
		img := rf.images[rng.Intn(len(rf.images))]
		switch r := rng.Intn(100); {
		case r < 10:
			check("mkdir "+ns, unix.Mkdir(dir, 0o755))
		case r < 18:
			check("rmdir "+ns, unix.Rmdir(dir))
		case r < 28:
			check("setxattr "+ns, unix.Setxattr(dir, fmt.Sprintf("user.k%d", rng.Intn(3)), []byte("s"), 0))
		case r < 50:
			for _, b := range append([]blob{img.config}, img.layers...) {
				err := writeFileSyscalls(filepath.Join(dir, "blobs", "sha256", b.hex()), b.data, unix.O_EXCL, false, false)
				check("ingest "+b.hex()[:12], err)
			}
			check("mkdir lib", unix.Mkdir(filepath.Join(dir, "images", "lib"), 0o755))
			check("write image "+ref, writeFileSyscalls(filepath.Join(dir, "images", ref), img.manifest.data, 0, rng.Intn(2) == 0, false))
		case r < 60:
			check("rename "+ref, unix.Rename(filepath.Join(dir, "images", ref), filepath.Join(dir, "images", ref2)))
		case r < 66:
			check("link "+ref, unix.Link(filepath.Join(dir, "images", ref), filepath.Join(dir, "images", ref2)))
		case r < 76:
			check("unlink "+ref, unix.Unlink(filepath.Join(dir, "images", ref)))
		case r < 82:
			check("unlink blob", unix.Unlink(filepath.Join(dir, "blobs", "sha256", pick(rf.blobHexes()))))
		default:
			data, err := os.ReadFile(filepath.Join(dir, "images", ref))
			check("read "+ref, err)
			switch {
			case err != nil || rf.isManifest(data):
				// ENOENT also for an image still being created: it cannot
				// be read before its first commit (docs/design.md).
			default:
				bad = append(bad, fmt.Sprintf("read of image %s/%s gave %d bytes that are neither a manifest of the pool nor the start of one", ns, ref, len(data)))
			}
		}
	}
	return bad
}

func (rf raceFiles) isManifest(data []byte) bool {
	for _, img := range rf.images {
		if bytes.Equal(img.manifest.data, data) {
			return true
		}
	}
	return false
}

func TestConcurrencyRacingClients(t *testing.T) {
	t.Parallel()
	seed := *concurrencySeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun: go test -run TestConcurrencyRacingClients ./integration/ -concurrency.seed %d)", seed, seed)
	d := startNsfs(t)
	rf := newRaceFiles(t)
	for _, ns := range raceNamespaces {
		mustRun(t, d.mnt, "mkdir", "ns/"+ns)
	}
	start := time.Now()

	type outcome struct {
		who string
		r   result
		bad []string
	}
	outcomes := make(chan outcome, concurrencyShells+concurrencyCallers)
	var wg sync.WaitGroup
	for i := 0; i < concurrencyShells; i++ {
		script := rf.shellScript(rand.New(rand.NewSource(seed+int64(i))), concurrencyShellOps)
		path := filepath.Join(rf.dir, fmt.Sprintf("client%d.sh", i))
		if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			outcomes <- outcome{who: "shell " + path, r: run(t, d.mnt, "sh", path)}
		}()
	}
	for i := 0; i < concurrencyCallers; i++ {
		rng := rand.New(rand.NewSource(seed + 100 + int64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := outcome{who: fmt.Sprintf("syscall client %d", i)}
			o.bad = rf.syscallClient(d.mnt, rng, concurrencyCalls)
			outcomes <- o
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(concurrencyDeadline):
		// A deadlock: have the daemon print its goroutines (SIGQUIT), which
		// ends it, so that the clients' requests fail and the test can end.
		// A daemon stuck in the kernel cannot end: abort its connection as
		// `nsfs umount` does.
		d.watchdog.Stop()
		d.finished, d.killed = true, true
		_ = d.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-d.exited:
		case <-time.After(5 * time.Second):
			res, err := client.Unmount(d.mnt)
			t.Logf("the daemon did not end on SIGQUIT; nsfs umount: %+v, %v", res, err)
			<-d.exited
		}
		<-done
		t.Fatalf("clients not finished %v after they started (deadlock?); the daemon's goroutines:\n%s", concurrencyDeadline, d.logs)
	}
	close(outcomes)
	elapsed := time.Since(start)

	select {
	case <-d.exited:
		t.Fatalf("the daemon exited during the races: %v\n%s", d.waitErr, d.logs)
	default:
	}
	if logs := d.logs.String(); strings.Contains(logs, "panic") || strings.Contains(logs, "fatal error") {
		t.Fatalf("the daemon panicked:\n%s", logs)
	}
	refusals := map[string]int{} // what the tools said, by message
	for o := range outcomes {
		for _, line := range strings.Split(strings.TrimSpace(o.r.stderr), "\n") {
			if i := strings.LastIndex(line, ": "); i >= 0 {
				refusals[line[i+2:]]++
			}
		}
		if o.r.cmdline != "" {
			if o.r.code != 0 || !strings.HasSuffix(o.r.stdout, "finished\n") {
				t.Errorf("%s did not finish: %s", o.who, o.r)
			}
			for _, line := range strings.Split(o.r.stderr, "\n") {
				for _, b := range toolErrorsThatAreBugs {
					if strings.Contains(line, b) {
						t.Errorf("%s: a tool failed with an error no operation answers: %s", o.who, line)
					}
				}
			}
		}
		for _, b := range o.bad {
			t.Errorf("%s: %s", o.who, b)
		}
	}

	// The mount works on, and holds together.
	if problems := checkStoreInvariants(d.mnt, d.root); len(problems) > 0 {
		t.Errorf("after the races:\n%s", strings.Join(problems, "\n"))
	}
	mustRun(t, d.mnt, "find", ".", "-false")
	mustRun(t, d.mnt, "getfattr", "-R", "-d", "ns")
	d.putImage(t, "default", "after:races", rf.images[0])
	for _, ns := range raceNamespaces {
		sh(t, d.mnt, "rm -rf ns/"+ns)
	}
	assertOutput(t, "ls ns after rm -rf of the raced namespaces", mustRun(t, d.mnt, "ls", "ns"), lines("default"))
	t.Logf("%d shell clients × %d tool runs and %d syscall clients × %d operations in %v",
		concurrencyShells, concurrencyShellOps, concurrencyCallers, concurrencyCalls, elapsed.Round(time.Millisecond))
	t.Logf("the tools' refusals: %v", refusals)

	d.stop(t)
	if out, code := runFsck(t, d.root); code != 0 {
		t.Errorf("nsfs fsck --verify-blobs after the races and a clean unmount exited %d:\n%s", code, out)
	}
}
