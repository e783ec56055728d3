package integration

// Crash safety: a seeded random workload runs through the mount while the
// daemon is killed with SIGKILL at random moments, hundreds of times. An
// oracle knows what every operation that returned must have done; after
// each kill the store is checked unmounted (`nsfs fsck --verify-blobs`) and
// then through a fresh mount.
//
//	go test -run Crash ./integration/ -crash.kills 2000 -crash.seed 42

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nsfs/nsfs/client"
	"golang.org/x/sys/unix"
)

var (
	crashSeed  = flag.Int64("crash.seed", 0, "seed of the crash test's workload and kill times (0: from the clock)")
	crashKills = flag.Int("crash.kills", 250, "how many times the crash test kills the daemon")
)

// crashWorkers run the workload at once, each on its own namespaces.
const crashWorkers = 4

// crashRefs are the refs every worker writes: two at the top, one below a
// prefix directory.
var crashRefs = []string{"a", "b", "lib/c"}

// isKillErr: the daemon died under the request (ECONNABORTED, or EIO from
// a close whose FLUSH the dying connection cut off, after the daemon may
// have committed) or before it (ENOTCONN); what the operation did is
// unknown. killed says whether the daemon was killed: an EIO from a live
// daemon is a failure of its own.
func isKillErr(err error, killed bool) bool {
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) ||
		killed && errors.Is(err, syscall.EIO)
}

// crashModel is what one worker's namespaces hold, as keys:
//
//	ns/<ns>                   "1"
//	label/<ns>/<key>          value
//	image/<ns>/<ref>          the manifest's sha256 hex
//	ilabel/<ns>/<ref>/<key>   value
//	blob/<ns>/<hex>           "1", for loose blobs (no image names them)
//
// An absent key is absent. Each worker owns its namespaces, so its
// operations on them are sequential and the model is exact between kills.
type crashModel map[string]string

func (m crashModel) clone() crashModel {
	c := make(crashModel, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (m crashModel) String() string {
	var out []string
	for _, k := range sortedKeys(m) {
		out = append(out, k+"="+m[k])
	}
	return strings.Join(out, "\n")
}

// dropPrefix removes every key starting with prefix.
func (m crashModel) dropPrefix(prefix string) {
	for k := range m {
		if strings.HasPrefix(k, prefix) {
			delete(m, k)
		}
	}
}

// imageLabels copies the labels of image ref of ns.
func (m crashModel) imageLabels(ns, ref string) map[string]string {
	out := map[string]string{}
	prefix := "ilabel/" + ns + "/" + ref + "/"
	for k, v := range m {
		if key, ok := strings.CutPrefix(k, prefix); ok {
			out[key] = v
		}
	}
	return out
}

// addImage sets image ref of ns to target (a manifest's hex) and adds
// labels to it, as `mv` and `ln` carry them over.
func (m crashModel) addImage(ns, ref, target string, labels map[string]string) {
	m["image/"+ns+"/"+ref] = target
	for k, v := range labels {
		m["ilabel/"+ns+"/"+ref+"/"+k] = v
	}
}

func (m crashModel) images(ns string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, "image/"+ns+"/") || strings.HasPrefix(k, "blob/"+ns+"/") {
			n++
		}
	}
	return n
}

// crashWorld is what every worker shares: the image pool, the loose blobs
// made so far, the kill flag.
type crashWorld struct {
	mnt    string
	pool   []testImage
	killed atomic.Bool // SIGKILL has been (or is about to be) sent

	mu    sync.Mutex
	loose map[string]bool // hexes of loose blobs ever made
	ops   atomic.Int64    // operations finished in this round
}

func (w *crashWorld) addLoose(hex string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.loose[hex] = true
}

func (w *crashWorld) isLoose(hex string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.loose[hex]
}

// crashWorker runs random operations on its own namespaces.
type crashWorker struct {
	world *crashWorld
	id    int
	nss   []string
	rng   *rand.Rand
	model crashModel
	// maybe is the model had the operation in flight at the kill taken
	// effect; nil when no operation was in flight.
	maybe    crashModel
	inFlight string
	recent   []string // the last operations, for failure messages
	failures []string // oracle violations seen while running
}

func (cw *crashWorker) logOp(s string) {
	cw.recent = append(cw.recent, s)
	if len(cw.recent) > 30 {
		cw.recent = cw.recent[len(cw.recent)-30:]
	}
}

func (cw *crashWorker) fail(format string, args ...any) {
	cw.failures = append(cw.failures, fmt.Sprintf("worker %d: ", cw.id)+fmt.Sprintf(format, args...))
}

func (cw *crashWorker) path(rel ...string) string {
	return filepath.Join(append([]string{cw.world.mnt, "ns"}, rel...)...)
}

// apply records the outcome of one operation: after is the model had it
// succeeded. It returns false once the daemon is gone.
func (cw *crashWorker) apply(what string, after crashModel, err error) bool {
	cw.world.ops.Add(1)
	switch {
	case err == nil:
		cw.logOp(what + ": ok")
		cw.model = after
		return true
	case errors.Is(err, syscall.EIO) && !cw.world.killed.Load():
		cw.fail("%s: %v from a daemon that was not killed", what, err)
		return true
	case isKillErr(err, cw.world.killed.Load()):
		if !cw.world.killed.Load() {
			cw.fail("%s: %v before the daemon was killed", what, err)
		}
		cw.logOp(what + ": " + err.Error() + " (killed)")
		cw.maybe, cw.inFlight = after, what
		return false
	default:
		cw.logOp(what + ": " + err.Error())
		return true
	}
}

// run performs operations until the daemon is gone or stop is closed.
func (cw *crashWorker) run(stop <-chan struct{}) {
	cw.maybe, cw.inFlight = nil, ""
	for {
		select {
		case <-stop:
			return
		default:
		}
		if !cw.step() {
			return
		}
	}
}

// step performs one random operation.
func (cw *crashWorker) step() bool {
	r := cw.rng
	ns := cw.nss[r.Intn(len(cw.nss))]
	m := cw.model
	if m["ns/"+ns] == "" && r.Intn(3) > 0 {
		return cw.mkdirNamespace(ns)
	}
	ref := crashRefs[r.Intn(len(crashRefs))]
	switch n := r.Intn(100); {
	case n < 4:
		return cw.mkdirNamespace(ns)
	case n < 8:
		return cw.rmdirNamespace(ns)
	case n < 10:
		return cw.purgeNamespace(ns)
	case n < 20:
		return cw.setNamespaceLabel(ns)
	case n < 28:
		return cw.ingestLoose(ns)
	case n < 33:
		return cw.rmLoose(ns)
	case n < 55:
		return cw.writeImage(ns, ref)
	case n < 61:
		return cw.setImageLabel(ns, ref)
	case n < 70:
		return cw.copyImage(ns, ref)
	case n < 78:
		return cw.renameImage(ns, ref)
	case n < 84:
		return cw.linkImage(ns, ref)
	case n < 92:
		return cw.rmImage(ns, ref)
	default:
		return cw.readImage(ns, ref)
	}
}

func (cw *crashWorker) mkdirNamespace(ns string) bool {
	after := cw.model.clone()
	after["ns/"+ns] = "1"
	err := unix.Mkdir(cw.path(ns), 0o755)
	if err == nil && cw.model["ns/"+ns] != "" {
		cw.fail("mkdir ns/%s succeeded, but it exists", ns)
	}
	return cw.apply("mkdir ns/"+ns, after, err)
}

func (cw *crashWorker) rmdirNamespace(ns string) bool {
	after := cw.model.clone()
	after.dropPrefix("ns/" + ns)
	for _, p := range []string{"label/", "image/", "ilabel/", "blob/"} {
		after.dropPrefix(p + ns + "/")
	}
	err := unix.Rmdir(cw.path(ns))
	if err == nil && cw.model.images(ns) > 0 {
		cw.fail("rmdir ns/%s succeeded while it had images or blobs:\n%s", ns, cw.model)
	}
	return cw.apply("rmdir ns/"+ns, after, err)
}

// purgeNamespace is `rm -rf ns/<ns>`: its images, then its blobs, then it.
func (cw *crashWorker) purgeNamespace(ns string) bool {
	for _, ref := range crashRefs {
		if cw.model["image/"+ns+"/"+ref] != "" && !cw.rmImage(ns, ref) {
			return false
		}
	}
	names, err := readDirNames(cw.path(ns, "blobs", "sha256"))
	if isKillErr(err, cw.world.killed.Load()) {
		return cw.apply("ls blobs of "+ns, cw.model, err)
	}
	for _, hex := range names {
		if !cw.rmBlob(ns, hex) {
			return false
		}
	}
	return cw.rmdirNamespace(ns)
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

var crashLabelValues = []string{"", "x", "team-a", strings.Repeat("v", 300)}

func (cw *crashWorker) setNamespaceLabel(ns string) bool {
	key := fmt.Sprintf("k%d", cw.rng.Intn(3))
	value := crashLabelValues[cw.rng.Intn(len(crashLabelValues))]
	after := cw.model.clone()
	if after["ns/"+ns] != "" {
		setOrDelete(after, "label/"+ns+"/"+key, value)
	}
	var err error
	if value == "" && cw.rng.Intn(2) == 0 {
		err = unix.Removexattr(cw.path(ns), "user."+key)
	} else {
		err = unix.Setxattr(cw.path(ns), "user."+key, []byte(value), 0)
	}
	return cw.apply(fmt.Sprintf("setfattr ns/%s user.%s=%q", ns, key, shortArgs([]string{value})), after, err)
}

func setOrDelete(m crashModel, key, value string) {
	if value == "" {
		delete(m, key)
	} else {
		m[key] = value
	}
}

// ingestLoose writes a blob no image names: small mostly, sometimes large
// enough that a kill lands in the middle of it.
func (cw *crashWorker) ingestLoose(ns string) bool {
	size := 1 + cw.rng.Intn(8<<10)
	if cw.rng.Intn(8) == 0 {
		size = 256<<10 + cw.rng.Intn(256<<10)
	}
	data := randomBytes(int64(cw.id)<<40|cw.rng.Int63n(1<<40), size)
	hex := sha256Hex(data)
	cw.world.addLoose(hex)
	after := cw.model.clone()
	if after["ns/"+ns] != "" {
		after["blob/"+ns+"/"+hex] = "1"
	}
	err := writeFileSyscalls(cw.path(ns, "blobs", "sha256", hex), data, unix.O_EXCL, cw.rng.Intn(2) == 0, cw.rng.Intn(3) == 0)
	return cw.apply(fmt.Sprintf("ingest %d bytes as blob %s of %s", size, hex[:12], ns), after, err)
}

// writeFileSyscalls creates path and writes data in pieces (so a kill can
// land between them), with fsync before close when asked.
func writeFileSyscalls(path string, data []byte, extraFlags int, fsync, chunked bool) error {
	fd, err := unix.Open(path, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC|extraFlags, 0o644)
	if err != nil {
		return err
	}
	chunk := len(data)
	if chunked {
		chunk = 64 << 10
	}
	for off := 0; off < len(data); {
		end := min(off+chunk, len(data))
		n, err := unix.Write(fd, data[off:end])
		if err != nil {
			unix.Close(fd)
			return err
		}
		off += n
	}
	if fsync {
		// A failed fsync is not the outcome: the close that follows
		// commits again (docs/design.md: errors are reported at fsync and close),
		// and may succeed, say once a blob the manifest names has come.
		ferr := unix.Fsync(fd)
		if cerr := unix.Close(fd); cerr != nil || ferr == nil {
			return cerr
		}
		return nil
	}
	return unix.Close(fd)
}

func (cw *crashWorker) rmLoose(ns string) bool {
	var held []string
	for k := range cw.model {
		if hex, ok := strings.CutPrefix(k, "blob/"+ns+"/"); ok {
			held = append(held, hex)
		}
	}
	if len(held) == 0 {
		return cw.ingestLoose(ns)
	}
	sort.Strings(held)
	return cw.rmBlob(ns, held[cw.rng.Intn(len(held))])
}

func (cw *crashWorker) rmBlob(ns, hex string) bool {
	after := cw.model.clone()
	delete(after, "blob/"+ns+"/"+hex)
	err := unix.Unlink(cw.path(ns, "blobs", "sha256", hex))
	if err == nil && cw.world.isLoose(hex) && cw.model["blob/"+ns+"/"+hex] == "" {
		cw.fail("rm of loose blob %s in %s succeeded, but %s does not hold it", hex, ns, ns)
	}
	return cw.apply("rm blob "+hex[:12]+" of "+ns, after, err)
}

// mkdirRefPrefix makes the directory a ref with a "/" lives in, as a
// user would before writing it there; that it fails otherwise (EEXIST,
// ENOENT) is fine. False when the daemon was killed meanwhile: the
// operation ends there, and returns false too.
func (cw *crashWorker) mkdirRefPrefix(ns, ref string) bool {
	if !strings.Contains(ref, "/") {
		return true
	}
	if err := unix.Mkdir(cw.path(ns, "images", filepath.Dir(ref)), 0o755); isKillErr(err, cw.world.killed.Load()) {
		return cw.apply("mkdir prefix of "+ref, cw.model, err)
	}
	return true
}

// writeImage sends what the namespace cannot see of a pool image, as a
// puller does, then writes its manifest as ref.
func (cw *crashWorker) writeImage(ns, ref string) bool {
	img := cw.world.pool[cw.rng.Intn(len(cw.world.pool))]
	for _, b := range append([]blob{img.config}, img.layers...) {
		p := cw.path(ns, "blobs", "sha256", b.hex())
		var st unix.Stat_t
		err := unix.Stat(p, &st)
		if err == nil {
			continue
		}
		if isKillErr(err, cw.world.killed.Load()) {
			return cw.apply("stat blob of "+ns, cw.model, err)
		}
		// The pool's blobs are not modelled: an ingest changes nothing the
		// oracle checks, and a failure (EEXIST: another namespace sent it
		// meanwhile) is fine.
		if err := writeFileSyscalls(p, b.data, unix.O_EXCL, false, false); isKillErr(err, cw.world.killed.Load()) {
			return cw.apply("ingest pool blob "+b.hex()[:12]+" of "+ns, cw.model, err)
		}
	}
	if !cw.mkdirRefPrefix(ns, ref) {
		return false
	}
	after := cw.model.clone()
	if after["ns/"+ns] != "" {
		after["image/"+ns+"/"+ref] = img.manifest.hex()
	}
	err := writeFileSyscalls(cw.path(ns, "images", ref), img.manifest.data, 0, cw.rng.Intn(3) == 0, false)
	return cw.apply(fmt.Sprintf("write image %s/%s = %s", ns, ref, img.manifest.hex()[:12]), after, err)
}

func (cw *crashWorker) setImageLabel(ns, ref string) bool {
	key := fmt.Sprintf("k%d", cw.rng.Intn(2))
	value := crashLabelValues[cw.rng.Intn(len(crashLabelValues))]
	after := cw.model.clone()
	if after["image/"+ns+"/"+ref] != "" {
		setOrDelete(after, "ilabel/"+ns+"/"+ref+"/"+key, value)
	}
	err := unix.Setxattr(cw.path(ns, "images", ref), "user."+key, []byte(value), 0)
	return cw.apply(fmt.Sprintf("setfattr image %s/%s user.%s", ns, ref, key), after, err)
}

// copyImage is `cp` of an image into another namespace of the worker (or
// another ref of the same one): read, then write.
func (cw *crashWorker) copyImage(ns, ref string) bool {
	toNS := cw.nss[cw.rng.Intn(len(cw.nss))]
	toRef := crashRefs[cw.rng.Intn(len(crashRefs))]
	if toNS == ns && toRef == ref {
		return cw.readImage(ns, ref)
	}
	data, err := os.ReadFile(cw.path(ns, "images", ref))
	if err != nil {
		return cw.apply("read image "+ns+"/"+ref+" to copy it", cw.model, err)
	}
	if want := cw.model["image/"+ns+"/"+ref]; sha256Hex(data) != want {
		cw.fail("image %s/%s reads as %d bytes with sha256 %s, want %q", ns, ref, len(data), sha256Hex(data), want)
	}
	if !cw.mkdirRefPrefix(toNS, toRef) {
		return false
	}
	after := cw.model.clone()
	if after["ns/"+toNS] != "" {
		after["image/"+toNS+"/"+toRef] = sha256Hex(data)
	}
	err = writeFileSyscalls(cw.path(toNS, "images", toRef), data, 0, false, false)
	return cw.apply(fmt.Sprintf("cp image %s/%s %s/%s", ns, ref, toNS, toRef), after, err)
}

// renameImage is `mv` within the namespace: the target is replaced, the
// image keeps its labels.
func (cw *crashWorker) renameImage(ns, ref string) bool {
	to := crashRefs[cw.rng.Intn(len(crashRefs))]
	if to == ref {
		return cw.readImage(ns, ref)
	}
	after := cw.model.clone()
	if v := after["image/"+ns+"/"+ref]; v != "" {
		labels := after.imageLabels(ns, ref)
		after.dropPrefix("ilabel/" + ns + "/" + to + "/")
		after.dropPrefix("ilabel/" + ns + "/" + ref + "/")
		delete(after, "image/"+ns+"/"+ref)
		after.addImage(ns, to, v, labels)
	}
	if !cw.mkdirRefPrefix(ns, to) {
		return false
	}
	err := unix.Rename(cw.path(ns, "images", ref), cw.path(ns, "images", to))
	return cw.apply(fmt.Sprintf("mv image %s/%s %s", ns, ref, to), after, err)
}

// linkImage is `ln`: a new image with the target and a copy of the labels.
func (cw *crashWorker) linkImage(ns, ref string) bool {
	to := crashRefs[cw.rng.Intn(len(crashRefs))]
	if to == ref {
		return cw.readImage(ns, ref)
	}
	after := cw.model.clone()
	if v := after["image/"+ns+"/"+ref]; v != "" && after["image/"+ns+"/"+to] == "" {
		after.addImage(ns, to, v, after.imageLabels(ns, ref))
	}
	if !cw.mkdirRefPrefix(ns, to) {
		return false
	}
	err := unix.Link(cw.path(ns, "images", ref), cw.path(ns, "images", to))
	return cw.apply(fmt.Sprintf("ln image %s/%s %s", ns, ref, to), after, err)
}

func (cw *crashWorker) rmImage(ns, ref string) bool {
	after := cw.model.clone()
	delete(after, "image/"+ns+"/"+ref)
	after.dropPrefix("ilabel/" + ns + "/" + ref + "/")
	err := unix.Unlink(cw.path(ns, "images", ref))
	return cw.apply("rm image "+ns+"/"+ref, after, err)
}

// readImage checks that an image reads as the model says, whole.
func (cw *crashWorker) readImage(ns, ref string) bool {
	data, err := os.ReadFile(cw.path(ns, "images", ref))
	want := cw.model["image/"+ns+"/"+ref]
	switch {
	case isKillErr(err, cw.world.killed.Load()):
		return cw.apply("read image "+ns+"/"+ref, cw.model, err)
	case err == nil && sha256Hex(data) != want:
		cw.fail("image %s/%s reads as %d bytes with sha256 %s, want %q", ns, ref, len(data), sha256Hex(data), want)
	case err != nil && want != "":
		cw.fail("read of image %s/%s (%s): %v", ns, ref, want[:12], err)
	}
	return cw.apply("read image "+ns+"/"+ref, cw.model, nil)
}

// actualState reads the keys of the model for namespaces nss through the
// mount.
func actualState(world *crashWorld, nss []string) (crashModel, error) {
	got := crashModel{}
	for _, ns := range nss {
		dir := filepath.Join(world.mnt, "ns", ns)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return nil, err
		}
		got["ns/"+ns] = "1"
		labels, err := xattrs(dir)
		if err != nil {
			return nil, fmt.Errorf("xattrs of ns/%s: %w", ns, err)
		}
		for k, v := range labels {
			got["label/"+ns+"/"+strings.TrimPrefix(k, "user.")] = v
		}
		images := filepath.Join(dir, "images")
		err = filepath.WalkDir(images, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			ref, _ := filepath.Rel(images, p)
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			got["image/"+ns+"/"+ref] = sha256Hex(data)
			labels, err := xattrs(p)
			if err != nil {
				return err
			}
			for k, v := range labels {
				got["ilabel/"+ns+"/"+ref+"/"+strings.TrimPrefix(k, "user.")] = v
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		names, err := readDirNames(filepath.Join(dir, "blobs", "sha256"))
		if err != nil {
			return nil, err
		}
		for _, hex := range names {
			if world.isLoose(hex) {
				got["blob/"+ns+"/"+hex] = "1"
			}
		}
	}
	return got, nil
}

// checkStoreInvariants checks, through the mount and in ROOT, that nothing
// half-written is visible: every image's manifest, config and layers are
// blobs its namespace holds; every blob a namespace lists reads whole and
// hashes to its name; every blob file in ROOT hashes to its name and is
// held by some namespace; no ingest is left.
func checkStoreInvariants(mnt, root string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	nss, err := readDirNames(filepath.Join(mnt, "ns"))
	if err != nil {
		return []string{"ls ns: " + err.Error()}
	}
	held := map[string]bool{}
	for _, ns := range nss {
		dir := filepath.Join(mnt, "ns", ns)
		names, err := readDirNames(filepath.Join(dir, "blobs", "sha256"))
		if err != nil {
			bad("ls ns/%s/blobs/sha256: %v", ns, err)
			continue
		}
		holds := map[string]bool{}
		for _, hex := range names {
			holds[hex], held[hex] = true, true
			data, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", hex))
			if err != nil {
				bad("blob %s listed in ns/%s does not read: %v", hex, ns, err)
			} else if sha256Hex(data) != hex {
				bad("blob %s in ns/%s reads as %d bytes hashing to %s (partial blob)", hex, ns, len(data), sha256Hex(data))
			}
		}
		images := filepath.Join(dir, "images")
		err = filepath.WalkDir(images, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			ref, _ := filepath.Rel(images, p)
			data, err := os.ReadFile(p)
			if err != nil {
				bad("image %s/%s does not read: %v", ns, ref, err)
				return nil
			}
			if !holds[sha256Hex(data)] {
				bad("image %s/%s: its manifest %s is not a blob of ns/%s", ns, ref, sha256Hex(data), ns)
			}
			var m manifest
			if err := json.Unmarshal(data, &m); err != nil || m.Config == nil {
				bad("image %s/%s is no manifest (%d bytes): %v", ns, ref, len(data), err)
				return nil
			}
			// An image may miss blobs the namespace cannot see (an
			// incomplete image: its pool blob went with the namespace
			// that held it); one it can see it holds.
			for _, d := range append([]descriptor{*m.Config}, m.Layers...) {
				hex := strings.TrimPrefix(d.Digest, "sha256:")
				if holds[hex] {
					continue
				}
				if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", hex)); err == nil {
					bad("image %s/%s names blob %s, which ns/%s can see but does not hold", ns, ref, hex, ns)
				}
			}
			return nil
		})
		if err != nil {
			bad("walk ns/%s/images: %v", ns, err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(root, "blobs", "sha256"))
	if err != nil {
		bad("ls ROOT/blobs/sha256: %v", err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(root, "blobs", "sha256", e.Name()))
		if err != nil {
			bad("ROOT/blobs/sha256/%s: %v", e.Name(), err)
		} else if sha256Hex(data) != e.Name() {
			bad("ROOT/blobs/sha256/%s holds %d bytes hashing to %s (partial blob)", e.Name(), len(data), sha256Hex(data))
		}
		if !held[e.Name()] {
			bad("ROOT/blobs/sha256/%s is a blob file no namespace holds", e.Name())
		}
	}
	for hex := range held {
		if _, err := os.Stat(filepath.Join(root, "blobs", "sha256", hex)); err != nil {
			bad("blob %s is held, but ROOT/blobs/sha256 has no file for it: %v", hex, err)
		}
	}
	if left, err := os.ReadDir(filepath.Join(root, "ingest")); err == nil && len(left) > 0 {
		bad("ROOT/ingest holds %d unfinished ingests after the mount started serving", len(left))
	}
	return problems
}

// fsckAvailable reports whether this nsfs has the fsck command.
func fsckAvailable() bool {
	_, err := runWithin(nil, toolTimeout, nsfsBin, "fsck", "--help")
	return err == nil
}

// runFsck runs `nsfs fsck --root ROOT --verify-blobs` on an unmounted store
// and returns its output and exit code.
func runFsck(t *testing.T, root string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := command(ctx, nsfsBin, "fsck", "--root", root, "--verify-blobs")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := runChild(t, cmd)
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("nsfs fsck: %v", err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

// fsckProblemsBesidesCrashLeftovers returns fsck's problem lines other
// than what a kill legitimately leaves and the next mount removes before
// serving: the ingest a writer was in the middle of, and a blob file
// published (fsync, rename) just before the commit that records it.
func fsckProblemsBesidesCrashLeftovers(out string) []string {
	var problems []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		switch {
		case line == "",
			strings.HasPrefix(line, "note: ingest/") && strings.Contains(line, ": unfinished ingest ("),
			strings.HasPrefix(line, "blob file blobs/sha256/") && strings.Contains(line, ": no namespace holds it (orphan"),
			strings.HasPrefix(line, "nsfs: store ") && strings.Contains(line, " problem"),
			strings.HasPrefix(line, "store ") && strings.Contains(line, " is clean"):
		default:
			problems = append(problems, line)
		}
	}
	return problems
}

func crashPool() []testImage {
	var pool []testImage
	for i := 0; i < 6; i++ {
		sizes := []int{100 + i*37}
		if i%2 == 1 {
			sizes = append(sizes, 20<<10+i)
		}
		if i == 5 {
			sizes = append(sizes, 300<<10) // an ingest slow enough to be killed in
		}
		pool = append(pool, newImage(int64(5000+i), "amd64", sizes...))
	}
	return pool
}

func TestCrashRandomKill9(t *testing.T) {
	t.Parallel()
	requireMount(t)
	seed := *crashSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	kills := *crashKills
	t.Logf("seed %d, %d kills (rerun: go test -run TestCrashRandomKill9 ./integration/ -crash.seed %d -crash.kills %d)", seed, kills, seed, kills)
	rng := rand.New(rand.NewSource(seed))

	d := startNsfs(t)
	world := &crashWorld{mnt: d.mnt, pool: crashPool(), loose: map[string]bool{}}
	workers := make([]*crashWorker, crashWorkers)
	for i := range workers {
		workers[i] = &crashWorker{
			world: world, id: i,
			nss:   []string{fmt.Sprintf("w%dx", i), fmt.Sprintf("w%dy", i)},
			rng:   rand.New(rand.NewSource(seed + int64(i) + 1)),
			model: crashModel{},
		}
	}
	if !fsckAvailable() {
		t.Fatalf("%s has no fsck command", nsfsBin)
	}

	start := time.Now()
	var fsckTime, checkTime, mountTime time.Duration
	var inFlight, totalOps, leftovers, stuck int
	var firstStuck string
	defer func() {
		// Not a failure of nsfs's durability (the kernel keeps the thread),
		// but worth knowing: until `nsfs umount` aborts the connection, the
		// store stays locked, and `nsfs mount` refuses it.
		if stuck > 0 {
			t.Logf("%d of %d kill -9 left the daemon unable to die until `nsfs umount` aborted its connection; the first:\n%s", stuck, kills, firstStuck)
		}
	}()
	for round := 1; round <= kills; round++ {
		world.killed.Store(false)
		world.ops.Store(0)
		// Kill after a random delay, or after a random number of
		// operations, while the workers are busy.
		delay := time.Duration(rng.Intn(100)) * time.Millisecond
		opTarget := int64(-1)
		if rng.Intn(2) == 0 {
			opTarget = int64(rng.Intn(150))
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for _, cw := range workers {
			wg.Add(1)
			go func() { defer wg.Done(); cw.run(stop) }()
		}
		if opTarget >= 0 {
			deadline := time.Now().Add(10 * time.Second)
			for world.ops.Load() < opTarget && time.Now().Before(deadline) {
				time.Sleep(200 * time.Microsecond)
			}
		} else {
			time.Sleep(delay)
		}
		world.killed.Store(true)
		if stacks := killUnlessStuck(t, d); stacks != "" {
			stuck++
			if firstStuck == "" {
				firstStuck = fmt.Sprintf("round %d: %s", round, stacks)
			}
		}
		waitWorkers(t, &wg, stop)
		totalOps += int(world.ops.Load())

		for _, cw := range workers {
			if len(cw.failures) > 0 {
				t.Fatalf("round %d (seed %d): oracle violations while running:\n%s\nrecent operations:\n%s",
					round, seed, strings.Join(cw.failures, "\n"), strings.Join(cw.recent, "\n"))
			}
		}

		// The store unmounted, before the next daemon cleans up: fsck
		// every time (about 20 ms on this small store).
		t0 := time.Now()
		out, code := runFsck(t, d.root)
		fsckTime += time.Since(t0)
		if problems := fsckProblemsBesidesCrashLeftovers(out); code != 0 && (code != 1 || len(problems) > 0) {
			t.Fatalf("round %d (seed %d): nsfs fsck --verify-blobs after kill -9 exited %d:\n%s", round, seed, code, out)
		} else if code != 0 {
			leftovers++
		}

		t0 = time.Now()
		d = d.restart(t)
		mountTime += time.Since(t0)
		world.mnt = d.mnt

		t0 = time.Now()
		for _, cw := range workers {
			got, err := actualState(world, cw.nss)
			if err != nil {
				t.Fatalf("round %d (seed %d): reading worker %d's namespaces after the remount: %v", round, seed, cw.id, err)
			}
			want := cw.model.String()
			switch {
			case got.String() == want:
			case cw.maybe != nil && got.String() == cw.maybe.String():
				inFlight++
			default:
				msg := fmt.Sprintf("round %d (seed %d): worker %d's namespaces after kill -9 and remount are not what its operations left:\n%s",
					round, seed, cw.id, lineDiff(want, got.String()))
				if cw.maybe != nil {
					msg += fmt.Sprintf("\n(nor what %q in flight at the kill would have left:\n%s)", cw.inFlight, lineDiff(cw.maybe.String(), got.String()))
				}
				t.Fatalf("%s\nrecent operations:\n%s", msg, strings.Join(cw.recent, "\n"))
			}
			cw.model = got
		}
		if problems := checkStoreInvariants(d.mnt, d.root); len(problems) > 0 {
			t.Fatalf("round %d (seed %d): after kill -9 and remount:\n%s", round, seed, strings.Join(problems, "\n"))
		}
		checkTime += time.Since(t0)
	}
	t.Logf("%d kills, %d operations (%d in flight at a kill took effect; %d kills left an unfinished ingest or an unrecorded blob file) in %v: remounts %v, checks through the mount %v, fsck %v",
		kills, totalOps, inFlight, leftovers, time.Since(start).Round(time.Millisecond), mountTime.Round(time.Millisecond),
		checkTime.Round(time.Millisecond), fsckTime.Round(time.Millisecond))
	d.stop(t)
	if out, code := runFsck(t, d.root); code != 0 {
		t.Errorf("nsfs fsck --verify-blobs after a clean unmount exited %d:\n%s", code, out)
	}
}

// killUnlessStuck sends SIGKILL to the daemon. A daemon that has not
// exited a few seconds later is stuck in the kernel: a thread sending a
// notification (fuse_reverse_inval_entry) waits uninterruptibly for a
// directory lock that a request holds while it waits for this very
// daemon. Its connection stays up, everything using the mount waits, and
// its open meta.db keeps the store locked. The test then collects the
// threads' kernel stacks and recovers as a user would, with what `nsfs
// umount` runs (client.Unmount: statfs gets no answer, so it aborts the
// connection with MNT_FORCE), called in this process: a fork could wait
// behind this process's own threads stuck in the mount. It returns the
// stacks, "" when the daemon died at once.
func killUnlessStuck(t *testing.T, d *daemon) string {
	t.Helper()
	if d.checkWatchdog(t) {
		t.FailNow()
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", d.pid(), err)
	}
	d.finished, d.killed = true, true
	select {
	case <-d.exited:
		return ""
	case <-time.After(3 * time.Second):
	}
	var stacks strings.Builder
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", d.pid()))
	for _, task := range tasks {
		stack, _ := os.ReadFile(filepath.Join(task, "stack"))
		if len(bytes.TrimSpace(stack)) > 0 {
			fmt.Fprintf(&stacks, "nsfs (pid %d) thread %s, 3 s after SIGKILL:\n%s", d.pid(), filepath.Base(task), stack)
		}
	}
	// Whether `nsfs mount` and `nsfs fsck` could open the store now.
	if f, err := os.Open(filepath.Join(d.root, "meta.db")); err == nil {
		switch err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); {
		case errors.Is(err, unix.EWOULDBLOCK):
			stacks.WriteString("ROOT/meta.db is still locked by the dead daemon\n")
		case err == nil:
			stacks.WriteString("ROOT/meta.db is not locked\n")
		}
		f.Close()
	}
	type unmounted struct {
		res client.Unmounted
		err error
	}
	done := make(chan unmounted, 1)
	go func() {
		res, err := client.Unmount(d.mnt)
		done <- unmounted{res, err}
	}()
	select {
	case <-d.exited:
	case <-time.After(exitTimeout):
		var u unmounted
		select {
		case u = <-done:
		default:
			u.err = errors.New("still waiting")
		}
		t.Fatalf("nsfs (pid %d) survived SIGKILL and `nsfs umount %s` (%+v, %v)\n%s", d.pid(), d.mnt, u.res, u.err, stacks.String())
	}
	if u := <-done; u.err != nil || !u.res.Hung {
		t.Errorf("`nsfs umount %s` of a daemon stuck after SIGKILL: %+v, %v; want it found hung and aborted", d.mnt, u.res, u.err)
	}
	return stacks.String()
}

// waitWorkers waits for the workers to notice the dead daemon.
func waitWorkers(t *testing.T, wg *sync.WaitGroup, stop chan struct{}) {
	t.Helper()
	close(stop)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("workers still busy 30 s after the daemon was killed")
	}
}
