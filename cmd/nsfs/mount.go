package main

import (
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/nsfs/nsfs/client"
	"github.com/nsfs/nsfs/fs"
	"github.com/nsfs/nsfs/metadata"
	"github.com/nsfs/nsfs/mountinfo"
	"github.com/pkg/errors"
	"github.com/urfave/cli/v2"
)

// mountCommand serves a store in the foreground:
//
//	$ nsfs mount /mnt
//	nsfs: serving /var/lib/nsfs at /mnt (content sharing: shared)
//	^C
//	$ nsfs mount /mnt & nsfs mount /mnt2
//	nsfs: store /var/lib/nsfs is already in use by another nsfs (/var/lib/nsfs/meta.db is locked): held by PID 4242, mounted at /mnt; unmount it first (nsfs umount /mnt)
var mountCommand = &cli.Command{
	Name:      "mount",
	Usage:     "serve a store at MOUNTPOINT until unmounted or interrupted",
	ArgsUsage: "MOUNTPOINT",
	Flags: []cli.Flag{
		rootFlag(),
		&cli.StringFlag{
			Name:  "content-sharing",
			Usage: "which blobs a namespace can see: shared (all the store holds) or isolated (its own, and those of namespaces labelled containerd.io/namespace.shareable=true)",
			Value: string(metadata.SharingShared),
		},
		&cli.BoolFlag{
			Name:  "allow-other",
			Usage: "let other users use the mount (the kernel checks mode bits)",
		},
		&cli.BoolFlag{
			Name:  "debug",
			Usage: "log every FUSE request",
		},
		&cli.BoolFlag{
			Name:  "nonempty",
			Usage: "mount even over a directory that is not empty, hiding what it holds",
		},
		&cli.IntFlag{
			Name:  "node-budget",
			Usage: "keep at most `N` image nodes in the daemon once the kernel's entries for them expired; the kernel is asked to forget the least recently used others (0: 16384)",
		},
		gcGraceFlag,
		&cli.IntFlag{
			Name:  "max-open-per-user",
			Usage: "let one user (other than root and the daemon's own) have at most `N` open ingests, blob readers and image writers; more are EMFILE (0: an eighth of the daemon's descriptor limit, at least 64)",
		},
		&cli.IntFlag{
			Name:  "max-open",
			Usage: "let all users together have at most `N` open ingests, blob readers and image writers; more are ENFILE (0: the daemon's descriptor limit less 256)",
		},
		&cli.Int64Flag{
			Name:  "max-buffered-per-user",
			Usage: "let one user's image writers (other than root's and the daemon's own user's) buffer at most `BYTES` together; a write past it is ENOMEM",
			Value: fs.DefaultMaxBufferedPerUser,
		},
	},
	Action: runMount,
}

func runMount(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.Errorf("mount: expected one MOUNTPOINT argument, got %d", c.NArg())
	}
	mountpoint, err := filepath.Abs(c.Args().First())
	if err != nil {
		return errors.Wrap(err, "mount")
	}
	root, err := storeRoot(c)
	if err != nil {
		return err
	}
	sharing, limits, err := mountSettings(c)
	if err != nil {
		return err
	}

	// Signals are caught from the start: one that arrives before the
	// server is up (a test or a user quick to interrupt) waits in the
	// channel and unmounts it at once, instead of killing the daemon and
	// leaving a dead mount.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(signals)

	// The mountpoint is checked first, so that a refused one leaves no
	// store behind; then the store is opened, so that a locked one never
	// mounts and leaves the mountpoint alone.
	probed, err := checkMountpoint(mountpoint, c.Bool("nonempty"))
	if err != nil {
		return err
	}
	db, err := metadata.Open(root, metadata.Options{Sharing: sharing})
	if metadata.IsLocked(err) {
		return lockedStoreError(root, err)
	}
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			db.Close()
		}
	}()
	// Holding the store's lock proves that no writer is left: once the
	// files agree with the records, a crash's unfinished ingests and the
	// blob files its records prove garbage can all go now. A store that
	// disagrees is refused, untouched.
	if stats, err := db.Recover(); err != nil {
		return err
	} else if stats.Blobs+stats.Ingests > 0 {
		log.Printf("removed what a crash left in %s: %d blob files no namespace holds, %d unfinished ingests", root, stats.Blobs, stats.Ingests)
	}
	// The checks read every page of meta.db into short-lived buffers: give
	// that memory back before serving, rather than at the next collection.
	debug.FreeOSMemory()
	if err := prepareMountpoint(mountpoint, probed, c.Bool("nonempty")); err != nil {
		return err
	}
	server, err := fs.Mount(mountpoint, db, fs.Config{
		AllowOther: c.Bool("allow-other"),
		Debug:      c.Bool("debug"),
		Limits:     limits,
		NodeBudget: c.Int("node-budget"),
	})
	if err != nil {
		return errors.Wrapf(fusermountError(err), "mount %s at %s", root, mountpoint)
	}
	fmt.Fprintf(os.Stderr, "nsfs: serving %s at %s (content sharing: %s)\n", root, mountpoint, sharing)
	stopCollector := startCollector(db, c.Duration(gcGraceFlag.Name))

	var unmountedHere atomic.Bool
	go func() {
		for sig := range signals {
			log.Printf("%v: unmounting %s", sig, mountpoint)
			unmountedHere.Store(true)
			if err := server.Unmount(); err != nil {
				unmountedHere.Store(false)
				// Exiting now would leave a dead mount ("Transport
				// endpoint is not connected"): keep serving.
				log.Printf("unmount %s: %s; still serving (close what uses it, then interrupt again or run umount %s)",
					mountpoint, oneLine(err), mountpoint)
			}
		}
	}()
	// Wait returns once the mount is gone: after Unmount, or an umount
	// from outside.
	server.Wait()
	// Said also when the unmount came from outside, which may complete
	// long after it was asked for (a lazy one, when the last user leaves).
	if unmountedHere.Load() {
		log.Printf("unmounted %s", mountpoint)
	} else {
		log.Printf("unmounted %s from outside (umount, or the last user of a lazy unmount left)", mountpoint)
	}
	signal.Stop(signals)
	stopCollector()
	removeIngestsAtUnmount(db)
	closed = true
	if err := db.Close(); err != nil {
		return errors.Wrapf(err, "close store %s", root)
	}
	return nil
}

// mountSettings checks mount's flags and derives from them the content
// sharing and the limits of users' handles. It raises the descriptor
// limit first: the limits follow from the raised value.
func mountSettings(c *cli.Context) (metadata.Sharing, fs.Limits, error) {
	sharing := metadata.Sharing(c.String("content-sharing"))
	if sharing != metadata.SharingShared && sharing != metadata.SharingIsolated {
		return "", fs.Limits{}, errors.Errorf("mount: --content-sharing %q: must be %q or %q", sharing, metadata.SharingShared, metadata.SharingIsolated)
	}
	if grace := c.Duration(gcGraceFlag.Name); grace < 0 {
		return "", fs.Limits{}, errors.Errorf("mount: --gc-grace %v: must not be negative (0 turns the collection off)", grace)
	}
	for _, name := range []string{"max-open-per-user", "max-open"} {
		if n := c.Int(name); n < 0 {
			return "", fs.Limits{}, errors.Errorf("mount: --%s %d: must not be negative (0 derives it from the descriptor limit)", name, n)
		}
	}
	if n := c.Int64("max-buffered-per-user"); n <= 0 {
		return "", fs.Limits{}, errors.Errorf("mount: --max-buffered-per-user %d: must be positive", n)
	}
	limits := fs.DefaultLimits(raiseOpenFileLimit())
	if n := c.Int("max-open-per-user"); n > 0 {
		limits.MaxOpenPerUser = n
	}
	if n := c.Int("max-open"); n > 0 {
		limits.MaxOpen = n
	}
	limits.MaxBufferedPerUser = c.Int64("max-buffered-per-user")
	return sharing, limits, nil
}

// raiseOpenFileLimit raises the soft RLIMIT_NOFILE to the hard limit (Go's
// runtime may have done so already) and returns the soft limit in force:
// every ingest and blob reader holds a descriptor. A failure is logged
// and the limit stays.
func raiseOpenFileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		log.Printf("getrlimit RLIMIT_NOFILE: %v; assuming 1024 descriptors", err)
		return 1024
	}
	if rl.Cur < rl.Max {
		raised := syscall.Rlimit{Cur: rl.Max, Max: rl.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Printf("raise RLIMIT_NOFILE from %d to %d: %v; staying at %d", rl.Cur, rl.Max, err, rl.Cur)
			return rl.Cur
		}
		return rl.Max
	}
	return rl.Cur
}

// oneLine flattens an error that spans lines (fusermount's output).
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// storeRoot is --root, else defaultRoot(), made absolute.
func storeRoot(c *cli.Context) (string, error) {
	root := c.String("root")
	if root == "" {
		var err error
		if root, err = defaultRoot(c.Command.Name); err != nil {
			return "", err
		}
	}
	abs, err := filepath.Abs(root)
	return abs, errors.Wrapf(err, "%s: --root %s", c.Command.Name, root)
}

// defaultRoot is /var/lib/nsfs for root, else $XDG_DATA_HOME/nsfs, else
// ~/.local/share/nsfs.
func defaultRoot(command string) (string, error) {
	if os.Geteuid() == 0 {
		return "/var/lib/nsfs", nil
	}
	if dir := os.Getenv("XDG_DATA_HOME"); dir != "" {
		return filepath.Join(dir, "nsfs"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", errors.Wrapf(err, "%s: no --root given and no home directory for the default store", command)
	}
	return filepath.Join(home, ".local", "share", "nsfs"), nil
}

// prepareMountpoint recovers the mounts killed or hung daemons left
// behind and creates the mountpoint if it is missing. A dead mount
// answers ENOTCONN; a daemon killed while stuck in the kernel (or hung)
// answers nothing, and its connection is aborted (client.Unmount), or
// this mount would wait for it forever. A mount that answers and is
// nsfs's is another daemon's, serving: mounting on top would hide it
// (and the store it serves) from everyone, so it is refused. Another
// filesystem that answers may be covered, as mount(8) would, when it is
// empty or allowNonEmpty (refuseMountpoint). probed is the dead or hung
// mount checkMountpoint's probe found, if any: it is not waited for twice.
func prepareMountpoint(mountpoint string, probed error, allowNonEmpty bool) error {
	for recovered := 0; ; recovered++ {
		// statfs, not stat: the kernel answers stat of a mount's root
		// from its attribute cache for a while after the daemon died,
		// but always asks the daemon for statfs.
		err := probed
		if recovered > 0 || err == nil {
			err = client.Probe(mountpoint, client.AnswerWait)
		}
		if err == nil {
			_, err = os.Stat(mountpoint)
		}
		switch {
		case err == nil:
			return refuseMountpoint(mountpoint, allowNonEmpty)
		case errors.Is(err, syscall.ENOTCONN), errors.Is(err, syscall.ETIMEDOUT):
			if recovered == maxStaleMounts {
				return errors.Errorf("mount: %s: %d dead mounts recovered and still one more under them; unmount them with umount -l %s", mountpoint, recovered, mountpoint)
			}
			res, uerr := client.Unmount(mountpoint)
			if uerr != nil {
				return errors.Wrapf(uerr, "mount: %s is a dead mount (its daemon died or hangs) and unmounting it failed", mountpoint)
			}
			what := "a dead mount (its daemon died) was unmounted"
			if res.Hung {
				what = "the mount of a daemon that did not answer (hung, or killed while stuck) was aborted and unmounted"
			}
			if res.Lazily {
				what += " lazily (still in use)"
			}
			log.Printf("recovered %s: %s", mountpoint, what)
			// What it covered shows now: another dead mount, one
			// that serves, or the directory.
		case errors.Is(err, os.ErrNotExist):
			if err := os.MkdirAll(mountpoint, 0o755); err != nil {
				return errors.Wrap(err, "mount")
			}
			return nil
		default:
			return errors.Wrap(err, "mount")
		}
	}
}

// maxStaleMounts bounds how many dead mounts, one on another, a mount
// recovers before it gives up.
const maxStaleMounts = 8

// topMount is the topmost mount at dir in this process's mount table;
// the zero Entry when nothing is mounted there.
func topMount(dir string) (mountinfo.Entry, error) {
	entries, err := mountinfo.Read(mountinfo.Self)
	if err != nil {
		return mountinfo.Entry{}, errors.Wrapf(err, "mount: reading the mount table to see what is mounted at %s", dir)
	}
	top, _ := mountinfo.At(entries, dir)
	return top, nil
}

// removeIngestsAtUnmount removes the ingests the mount still had once its
// server stopped (the temporary files a tool left in blobs/sha256, the
// files of scratch directories): nothing can write them any more, a
// remount would forget them, and nsfs fsck would list them. A kill -9
// never gets here: the next mount removes them before it serves.
func removeIngestsAtUnmount(db *metadata.DB) {
	stats, err := db.RemoveIngests()
	if err != nil {
		log.Printf("unmount: %v", err)
	}
	if stats.Ingests > 0 {
		log.Printf("removed %d unfinished ingests the mount had (%d bytes: temporary files never renamed to a digest, scratch files)",
			stats.Ingests, stats.Bytes)
	}
}
