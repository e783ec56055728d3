package main

import (
	"fmt"
	"log"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nsfs/nsfs/layerindex"
	"github.com/nsfs/nsfs/metadata"
	"github.com/pkg/errors"
	"github.com/urfave/cli/v2"
)

// gcCommand collects the garbage of an unmounted store, as a mount does
// before it serves:
//
//	$ nsfs gc --root /var/lib/nsfs
//	removed blob file blobs/sha256/2b2d… (7 bytes, last written 2026-11-27T04:48:28Z): no namespace holds it
//	removed ingest/4f1c…-2749 (1048576 bytes, last written 2026-11-27T04:47:01Z): an unfinished ingest
//	removed 2 files (1048583 bytes) from /var/lib/nsfs
//	$ nsfs gc --root /var/lib/nsfs --compact
//	no garbage in /var/lib/nsfs
//	compacted /var/lib/nsfs/meta.db: 475201536 bytes before, 68304896 after
var gcCommand = &cli.Command{
	Name:      "gc",
	Usage:     "remove the garbage of an unmounted store: blob files no namespace holds, unfinished ingests",
	ArgsUsage: " ",
	Description: `A crash can leave blob files no namespace holds and ingests that were never
finished. A mounted store removes them itself (before it serves, and then
every --gc-grace); nsfs gc does it for a store that is not mounted, and
prints each file it removes. Records are never changed (nsfs fsck --repair
does that). With --grace, only garbage last written longer ago goes.

meta.db reuses the space of deleted records but never gives it back to the
filesystem; --compact then rewrites it without the free space (a copy in
the same directory, synced, then renamed over it) and says its size before
and after.`,
	Flags: []cli.Flag{
		rootFlag(),
		&cli.DurationFlag{
			Name:  "grace",
			Usage: "remove only garbage last written longer than `DURATION` ago (0: all of it; nothing can be writing to an unmounted store)",
		},
		&cli.BoolFlag{
			Name:  "compact",
			Usage: "then rewrite meta.db without its free space (it needs room for the copy)",
		},
	},
	Action: runGC,
}

func runGC(c *cli.Context) error {
	if c.NArg() != 0 {
		return errors.Errorf("gc: unexpected argument %q (the store is --root DIR)", c.Args().First())
	}
	root, err := storeRoot(c)
	if err != nil {
		return err
	}
	if c.Duration("grace") < 0 {
		return errors.Errorf("gc: --grace %v: must not be negative", c.Duration("grace"))
	}
	if err := collectStoreGarbage(root, c.Duration("grace")); err != nil {
		return err
	}
	if !c.Bool("compact") {
		return nil
	}
	stats, err := metadata.Compact(root)
	if metadata.IsLocked(err) {
		return lockedStoreError(root, err)
	}
	if err != nil {
		return err
	}
	fmt.Printf("compacted %s: %d bytes before, %d after\n", filepath.Join(root, "meta.db"), stats.Before, stats.After)
	return nil
}

// collectStoreGarbage is nsfs gc without --compact.
func collectStoreGarbage(root string, grace time.Duration) error {
	db, err := openStore(root, metadata.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	// What is not proven garbage is never collected; a store whose files
	// disagree with its records is left to nsfs fsck.
	if err := db.CheckFiles(); err != nil {
		return err
	}
	stats, err := db.CollectGarbage(metadata.GCOptions{Grace: grace})
	for _, g := range stats.Removed {
		fmt.Printf("removed %s\n", describeGarbage(g))
	}
	collectLayerIndexes(root, func(format string, args ...any) { fmt.Printf(format+"\n", args...) })
	if err != nil {
		return err
	}
	if len(stats.Removed) == 0 {
		fmt.Printf("no garbage in %s\n", root)
		return nil
	}
	fmt.Printf("removed %s (%d bytes) from %s\n", count(len(stats.Removed), "file"), stats.Bytes, root)
	return nil
}

// describeGarbage says what a removed file was.
func describeGarbage(g metadata.Garbage) string {
	what := "no namespace holds it"
	switch {
	case strings.HasPrefix(g.Path, "ingest/"):
		what = "an unfinished ingest"
	case g.Path == metadata.CompactLeftover:
		what = "the copy of a gc --compact that did not finish"
	}
	return fmt.Sprintf("%s (%d bytes, last written %s): %s", g.Path, g.Size, g.ModTime.UTC().Format(time.RFC3339), what)
}

// gcGraceFlag is nsfs mount's --gc-grace.
var gcGraceFlag = &cli.DurationFlag{
	Name: "gc-grace",
	Usage: "collect garbage in the background: unfinished ingests and blob files no namespace holds, once last written " +
		"longer than `DURATION` ago (looked for every DURATION, at most every 10m; 0: never)",
	Value: time.Hour,
}

// maxGCInterval bounds the time between two collections, so that garbage
// outlives its grace by at most this long.
const maxGCInterval = 10 * time.Minute

// startCollector collects the garbage of a mounted store in the
// background, every min(grace, 10m), and returns the function that stops
// it (and waits for a collection in progress) before the store closes. An
// ingest goes once it was last written more than grace ago, so a pull in
// progress, which keeps writing, is never collected. The kernel has
// nothing to be told: it never keeps a blob's name (fs, sha256Dir.Lookup).
func startCollector(db *metadata.DB, grace time.Duration) (stop func()) {
	if grace <= 0 {
		return func() {}
	}
	interval := min(grace, maxGCInterval)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
			}
			stats, err := db.CollectGarbage(metadata.GCOptions{Grace: grace})
			for _, g := range stats.Removed {
				log.Printf("gc: removed %s", describeGarbage(g))
			}
			collectLayerIndexes(db.Root(), log.Printf)
			if err != nil {
				log.Printf("gc: %v", err)
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}

// collectLayerIndexes removes the rootfs indexes of layers whose blob is
// gone: an index goes with its blob.
func collectLayerIndexes(root string, report func(format string, args ...any)) {
	if n, err := layerindex.CollectStore(root); err != nil {
		report("gc: layer indexes: %v", err)
	} else if n > 0 {
		report("gc: removed %d layer indexes whose blob is gone", n)
	}
}
