package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nsfs/nsfs/metadata"
	"github.com/pkg/errors"
	"github.com/urfave/cli/v2"
)

// fsckCommand checks an unmounted store and, with --repair, repairs it:
//
//	$ nsfs fsck --root /var/lib/nsfs
//	namespace "foo": image "app:v1": target blob sha256:4f… is missing (its file blobs/sha256/4f… is gone)
//	blob sha256:4f…: its file blobs/sha256/4f… is missing
//	nsfs: store /var/lib/nsfs has 2 problems (run nsfs fsck --repair to repair it; no blob whose bytes verify is deleted)
//	$ nsfs fsck --root /var/lib/nsfs --repair
//	...
//	removed image "app:v1" of namespace "foo": its target blob sha256:4f… is missing
//	store /var/lib/nsfs is clean now: 2 namespaces, 3 images, 7 blobs, 7 blob files
var fsckCommand = &cli.Command{
	Name:      "fsck",
	Usage:     "check an unmounted store; with --repair, repair it",
	ArgsUsage: " ",
	Description: `Checks every record of meta.db against the others and against the blob files:
one line per problem, naming the object, then exit status 1; a clean store
prints one line and exits 0. An unfinished ingest (what a killed daemon was
writing) is no problem: a "note:" line, which nsfs gc or the next mount
removes. --verify-blobs also hashes every blob file.
--repair works on a copy: it reads every record it can into a new meta.db
(the one it started from is kept as meta.db.before-repair-TIME), then removes the records of blobs whose file is gone
and the images that need them, rebuilds what can be derived (holder
records, counts, sizes), adopts every blob file no record names whose
bytes verify into namespace lost-found, moves corrupt files and anything
that is not a blob to quarantine/, removes unfinished ingests and the blob
files the records prove garbage, prints each action, checks again, and
exits 0 when the store is clean. It never deletes a blob whose bytes
verify. The store must not be mounted.`,
	Flags: []cli.Flag{
		rootFlag(),
		&cli.BoolFlag{Name: "verify-blobs", Usage: "hash every blob file and compare with its name (reads every byte)"},
		&cli.BoolFlag{Name: "repair", Usage: "salvage and rebuild what can be, adopt or set aside the rest, and report each action"},
	},
	Action: runFsck,
}

func runFsck(c *cli.Context) error {
	if c.NArg() != 0 {
		return errors.Errorf("fsck: unexpected argument %q (the store is --root DIR)", c.Args().First())
	}
	root, err := storeRoot(c)
	if err != nil {
		return err
	}
	repair := c.Bool("repair")
	opts := metadata.CheckOptions{VerifyBlobs: c.Bool("verify-blobs")}
	var rep metadata.Report
	if repair {
		if err := refuseMissingStore(root); err != nil {
			return err
		}
		rep, err = metadata.Repair(root, opts)
		if metadata.IsLocked(err) {
			return lockedStoreError(root, err)
		}
	} else {
		var db *metadata.DB
		db, err = openStore(root, metadata.Options{ReadOnly: true})
		if metadata.IsDamaged(err) {
			// Nothing more can be read: the reason is the report.
			fmt.Println(err)
			return errors.Errorf("store %s is damaged (run nsfs fsck --repair to salvage what is readable)", root)
		}
		if err != nil {
			return err
		}
		rep, err = db.Check(opts)
		db.Close()
	}
	for _, p := range rep.Problems {
		fmt.Println(p)
	}
	for _, n := range rep.Notes {
		fmt.Println("note: " + n.String())
	}
	for _, a := range rep.Repairs {
		fmt.Println(metadata.Printable(a))
	}
	if err != nil {
		return errors.WithMessage(err, "fsck")
	}
	checked := fmt.Sprintf("%s, %s, %s, %s", count(rep.Namespaces, "namespace"), count(rep.Images, "image"),
		count(rep.Blobs, "blob"), count(rep.Files, "blob file"))
	switch {
	case len(rep.Problems) == 0:
		fmt.Printf("store %s is clean: %s\n", root, checked)
		return nil
	case !repair:
		return errors.Errorf("store %s has %s (run nsfs fsck --repair to repair it; no blob whose bytes verify is deleted)", root, count(len(rep.Problems), "problem"))
	case len(rep.Remaining) == 0:
		fmt.Printf("store %s is clean now: %s\n", root, checked)
		return nil
	}
	for _, p := range rep.Remaining {
		fmt.Printf("not repaired: %s\n", p)
	}
	return errors.Errorf("store %s still has %s that --repair cannot repair (listed above: they need a person)", root, count(len(rep.Remaining), "problem"))
}

// count says "1 image", "3 images".
func count(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// rootFlag is --root of the commands that open a store themselves.
func rootFlag() cli.Flag {
	return &cli.StringFlag{
		Name:        "root",
		Usage:       "the store `DIR` (meta.db, blobs/, ingest/)",
		DefaultText: "/var/lib/nsfs for root, else $XDG_DATA_HOME/nsfs or ~/.local/share/nsfs",
	}
}

// openStore opens an existing, unmounted store for fsck and gc: a missing
// store is an error (never created), a mounted one ErrLocked's message.
func openStore(root string, opts metadata.Options) (*metadata.DB, error) {
	if _, err := os.Lstat(filepath.Join(root, "meta.db")); errors.Is(err, os.ErrNotExist) {
		// Never created here: read-only, metadata says whether the root
		// is no store or one whose records are lost.
		opts.ReadOnly = true
	}
	db, err := metadata.Open(root, opts)
	if metadata.IsLocked(err) {
		return nil, lockedStoreError(root, err)
	}
	return db, err
}

// refuseMissingStore is nil unless root holds no store at all (then the
// repair would create one): a root whose meta.db is missing beside blob
// files is a store to repair.
func refuseMissingStore(root string) error {
	if _, err := os.Lstat(filepath.Join(root, "meta.db")); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := metadata.Open(root, metadata.Options{ReadOnly: true})
	if err == nil {
		db.Close()
	}
	if err != nil && !metadata.IsDamaged(err) {
		return err
	}
	return nil
}
