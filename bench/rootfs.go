package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// The rootfs rows: one gzip layer made of a tree of this machine
// (-rootfs-src, /usr/share by default: tens of thousands of real files),
// written into a fresh nsfs store through its mount, against the same
// tree unpacked (tar -x) on the same disk. In order:
//
//   - index build: the first stat below rootfs/<ref> indexes the layer
//     (one streaming pass); its uncompressed MB/s against Go's gunzip of
//     the same blob in this process (target: ≥ 100 MB/s, ≥ 0.75× gunzip);
//   - index size against the compressed layer (target ≤ 3%);
//   - first cat of a small file deep in the layer after a remount with a
//     cold page cache (target ≤ 50 ms);
//   - find | wc -l and ls -lR, warm, against the unpacked copy (≤ 2×);
//   - tar -c of the whole tree, against the unpacked copy (≥ 0.5× its
//     speed), warm (both sides' pages cached) and cold (the kernel's
//     caches dropped before every run of either side);
//   - the daemon's peak RSS through all of it.

var (
	rootfsSrc  = flag.String("rootfs-src", "/usr/share", "the tree the rootfs rows make their layer of")
	skipRootfs = flag.Bool("skip-rootfs", false, "skip the rootfs rows")
	rootfsRuns = flag.Int("rootfs-rounds", 3, "rounds of each rootfs comparison on each side (medians are shown)")
)

// rootfsRow is one line of the rootfs table.
type rootfsRow struct {
	name, nsfs, floor, ratio, target string
	met                              bool
}

type rootfsRows struct {
	rows   []rootfsRow
	status string
	note   string
}

func (r rootfsRows) print(out io.Writer) {
	if r.rows == nil {
		fmt.Fprintf(out, "rootfs rows: %s\n", r.status)
		return
	}
	fmt.Fprintf(out, "\nrootfs view (%s)\n\n", r.note)
	fmt.Fprintln(out, "| workload | nsfs | floor | ratio | target | met |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|")
	for _, row := range r.rows {
		met := "no"
		if row.met {
			met = "yes"
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s |\n", row.name, row.nsfs, row.floor, row.ratio, row.target, met)
	}
}

// timed runs a shell command and returns how long it took.
func shellTimed(dir, script string) (time.Duration, string, error) {
	start := time.Now()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, string(out), fmt.Errorf("%s: %v\n%s", script, err, out)
	}
	return time.Since(start), string(out), nil
}

func measureRootfs(dir string) (rootfsRows, error) {
	var r rootfsRows
	work := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return r, err
	}
	// The layer: tar of the source, gzip -6 in this process.
	src := filepath.Clean(*rootfsSrc)
	tarFile := filepath.Join(work, "layer.tar")
	if _, out, err := shellTimed("/", fmt.Sprintf("tar -C %s -cf %s --sort=name .", shellQuote(src), shellQuote(tarFile))); err != nil {
		return r, fmt.Errorf("tar of %s: %v %s", src, err, out)
	}
	tarData, err := os.ReadFile(tarFile)
	if err != nil {
		return r, err
	}
	var gzBuf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gzBuf, 6)
	zw.Write(tarData)
	zw.Close()
	layer := gzBuf.Bytes()
	tarSize := int64(len(tarData))
	tarData = nil

	// The floor of the index build: Go's gunzip of the same bytes.
	start := time.Now()
	zr, _ := gzip.NewReader(bytes.NewReader(layer))
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return r, err
	}
	gunzip := time.Since(start)

	// The unpacked copy, on the store's disk.
	unpacked := filepath.Join(work, "unpacked")
	os.MkdirAll(unpacked, 0o755)
	if _, out, err := shellTimed("/", fmt.Sprintf("tar -C %s -xf %s", shellQuote(unpacked), shellQuote(tarFile))); err != nil {
		return r, fmt.Errorf("unpack: %v %s", err, out)
	}
	os.Remove(tarFile)

	// A store holding one image of that layer, written through the mount.
	store := filepath.Join(work, "store")
	nsfs := &target{name: "nsfs-rootfs", mnt: filepath.Join(work, "mnt")}
	logPath := filepath.Join(work, "nsfs.log")
	if err := nsfs.start([]string{*nsfsBin, "mount", "--root", store, nsfs.mnt}, logPath); err != nil {
		return r, err
	}
	defer nsfs.stop()
	config := []byte(fmt.Sprintf(`{"architecture":%q,"os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`, goarch()))
	blobs := map[string][]byte{}
	desc := func(mt string, b []byte) map[string]any {
		sum := sha256.Sum256(b)
		h := hex.EncodeToString(sum[:])
		blobs[h] = b
		return map[string]any{"mediaType": mt, "digest": "sha256:" + h, "size": len(b)}
	}
	manifest, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": desc("application/vnd.oci.image.config.v1+json", config),
		"layers": []any{desc("application/vnd.oci.image.layer.v1.tar+gzip", layer)}})
	var layerHex string
	for h, b := range blobs {
		if len(b) == len(layer) {
			layerHex = h
		}
		if err := os.WriteFile(nsfs.path("default", "blobs", "sha256", h), b, 0o644); err != nil {
			return r, err
		}
	}
	if err := os.WriteFile(nsfs.path("default", "images", "bench"), manifest, 0o644); err != nil {
		return r, err
	}
	root := nsfs.path("default", "rootfs", "bench")

	// Index build: the first lookup below the image's root.
	start = time.Now()
	if _, err := os.Stat(root); err != nil {
		return r, err
	}
	build := time.Since(start)
	peak := int64(0)
	notePeak := func() {
		if m, err := memoryOf(nsfs.daemon.Process.Pid); err == nil && m.hwm > peak {
			peak = m.hwm
		}
	}
	notePeak()
	mbps := func(n int64, d time.Duration) float64 { return float64(n) / 1e6 / d.Seconds() }
	r.rows = append(r.rows, rootfsRow{name: "index build (uncompressed MB/s)",
		nsfs: fmt.Sprintf("%.0f MB/s", mbps(tarSize, build)), floor: fmt.Sprintf("%.0f MB/s (Go gunzip)", mbps(tarSize, gunzip)),
		ratio: fmt.Sprintf("%.2f×", gunzip.Seconds()/build.Seconds()), target: "≥ 100 MB/s", met: mbps(tarSize, build) >= 100})
	st, err := os.Stat(filepath.Join(store, "layerindex", "sha256", layerHex))
	if err != nil {
		return r, fmt.Errorf("the layer's index: %v", err)
	}
	share := float64(st.Size()) / float64(len(layer))
	r.rows = append(r.rows, rootfsRow{name: "index size", nsfs: fmt.Sprintf("%.1f KiB", float64(st.Size())/1024),
		floor: fmt.Sprintf("%.1f MiB layer", float64(len(layer))/(1<<20)), ratio: fmt.Sprintf("%.2f%%", share*100),
		target: "≤ 3%", met: share <= 0.03})

	// The deepest small file last in tar order: its bytes lie near the
	// layer's end.
	var deep string
	filepath.Walk(unpacked, func(p string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() && info.Size() > 0 && info.Size() <= 64<<10 {
			deep = p
		}
		return nil
	})
	rel, _ := filepath.Rel(unpacked, deep)

	// First cat after a remount, page cache dropped: the median of
	// rootfsRuns remounts, since one cold read is at the mercy of the
	// disk (other machines share it).
	var firstCats []time.Duration
	for i := 0; i < *rootfsRuns; i++ {
		nsfs.stop()
		if err := nsfs.start([]string{*nsfsBin, "mount", "--root", store, nsfs.mnt}, logPath); err != nil {
			return r, err
		}
		os.Stat(root) // the image's tree, from the index file
		exec.Command("sync").Run()
		os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
		d, _, err := shellTimed("/", "cat "+shellQuote(filepath.Join(root, rel))+" >/dev/null")
		if err != nil {
			return r, err
		}
		firstCats = append(firstCats, d)
	}
	firstCat := median(firstCats)
	r.rows = append(r.rows, rootfsRow{name: fmt.Sprintf("first cat of a small file near the layer's end, cold (median of %d remounts)", len(firstCats)), nsfs: fmtDur(firstCat),
		floor: "—", ratio: "—", target: "≤ 50 ms", met: firstCat <= 50*time.Millisecond})

	// dropCaches empties the kernel's page, dentry and inode caches, of
	// both sides alike (the daemon keeps its indexes and spans).
	dropCaches := func() {
		exec.Command("sync").Run()
		os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
	}
	compare := func(name, script string, target string, ok func(ratio float64) bool, speed, cold bool) error {
		// Both sides alike, alternating, the median of -rootfs-rounds: warm
		// (after a first run of each that is not counted), or cold (the
		// kernel's caches dropped before every run).
		var a, b []time.Duration
		for i := 0; i <= *rootfsRuns; i++ {
			if cold && i == 0 {
				continue
			}
			if cold {
				dropCaches()
			}
			da, _, err := shellTimed(root, script)
			if err != nil {
				return err
			}
			if cold {
				dropCaches()
			}
			db, _, err := shellTimed(unpacked, script)
			if err != nil {
				return err
			}
			if i > 0 {
				a, b = append(a, da), append(b, db)
			}
		}
		ma, mb := median(a), median(b)
		ratio := ma.Seconds() / mb.Seconds()
		text := fmt.Sprintf("%.2f×", ratio)
		if speed {
			ratio = 1 / ratio
			text = fmt.Sprintf("%.2f× the speed", ratio)
		}
		r.rows = append(r.rows, rootfsRow{name: name, nsfs: fmtDur(ma), floor: fmtDur(mb) + " (unpacked)", ratio: text, target: target, met: ok(ratio)})
		notePeak()
		return nil
	}
	atMost2 := func(x float64) bool { return x <= 2 }
	halfSpeed := func(x float64) bool { return x >= 0.5 }
	// GNU tar does not read the files when it writes to /dev/null: a pipe.
	const tarAll = "tar -cf - . | wc -c >/dev/null"
	if err := compare("find . | wc -l, warm", "find . | wc -l", "≤ 2×", atMost2, false, false); err != nil {
		return r, err
	}
	if err := compare("ls -lR, warm", "ls -lR >/dev/null", "≤ 2×", atMost2, false, false); err != nil {
		return r, err
	}
	if err := compare("tar -c . | wc -c (every file read), warm", tarAll, "≥ 0.5× the speed", halfSpeed, true, false); err != nil {
		return r, err
	}
	if err := compare("tar -c . | wc -c (every file read), cold", tarAll, "≥ 0.5× the speed", halfSpeed, true, true); err != nil {
		return r, err
	}
	r.rows = append(r.rows, rootfsRow{name: "daemon peak RSS (VmHWM) through the rows", nsfs: fmt.Sprintf("%.1f MiB", float64(peak)/(1<<20)),
		floor: "—", ratio: "—", target: "≤ 256 MiB (flat in the layer's bytes)", met: peak <= 256<<20})
	r.note = fmt.Sprintf("one gzip layer of %s: %.0f MB uncompressed, %.0f MB compressed", src, float64(tarSize)/1e6, float64(len(layer))/1e6)
	return r, nil
}

func fmtDur(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func goarch() string { return runtime.GOARCH }
