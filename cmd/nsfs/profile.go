package main

import (
	"log"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/pkg/errors"
	"github.com/urfave/cli/v2"
)

// cpuProfileFlag makes `nsfs mount` write a CPU profile of the daemon,
// from mount to unmount, for `go tool pprof`:
//
//	$ nsfs mount --cpuprofile /tmp/nsfs.prof /mnt &
//	$ ls -l /mnt/ns/default/images >/dev/null; umount /mnt
//	$ go tool pprof -top bin/nsfs /tmp/nsfs.prof
var cpuProfileFlag = &cli.StringFlag{
	Name:  "cpuprofile",
	Usage: "write a CPU profile of the daemon to `FILE` (until it unmounts), for go tool pprof",
}

// memProfileFlag makes `nsfs mount` write a heap profile of the daemon
// each time it gets SIGUSR1 (what the nodes the kernel knows hold):
//
//	$ nsfs mount --memprofile /tmp/heap.prof /mnt &
//	$ ls -lR /mnt >/dev/null; kill -USR1 %1
//	$ go tool pprof -sample_index=inuse_space -top bin/nsfs /tmp/heap.prof
var memProfileFlag = &cli.StringFlag{
	Name:  "memprofile",
	Usage: "write a heap profile of the daemon to `FILE` on every SIGUSR1, for go tool pprof",
}

// writeHeapProfiles writes the heap profile to path on every SIGUSR1.
func writeHeapProfiles(path string) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			runtime.GC() // the profile shows the heap as of the last GC
			f, err := os.Create(path)
			if err == nil {
				err = pprof.WriteHeapProfile(f)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				log.Printf("--memprofile %s: %v", path, err)
				continue
			}
			log.Printf("wrote heap profile %s", path)
		}
	}()
}

// The flags are added here rather than in mount.go, so that profiling stays
// out of the mount's own code: the mount's action runs inside the profile.
func init() {
	mountCommand.Flags = append(mountCommand.Flags, cpuProfileFlag, memProfileFlag)
	serve := mountCommand.Action
	mountCommand.Action = func(c *cli.Context) error {
		if path := c.String(memProfileFlag.Name); path != "" {
			writeHeapProfiles(path)
		}
		path := c.String(cpuProfileFlag.Name)
		if path == "" {
			return serve(c)
		}
		f, err := os.Create(path)
		if err != nil {
			return errors.Wrap(err, "mount: --cpuprofile")
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return errors.Wrapf(err, "mount: --cpuprofile %s", path)
		}
		serveErr := serve(c)
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil && serveErr == nil {
			return errors.Wrapf(err, "mount: --cpuprofile %s", path)
		}
		return serveErr
	}
}
