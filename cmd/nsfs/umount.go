package main

import (
	"fmt"

	"github.com/nsfs/nsfs/client"
	"github.com/pkg/errors"
	"github.com/urfave/cli/v2"
)

// umountCommand unmounts an nsfs mount, also a busy or a dead one, and
// says what it did:
//
//	$ nsfs umount /mnt
//	unmounted /mnt
//	$ cd /mnt/ns/default & nsfs umount /mnt
//	/mnt was busy: detached lazily; it goes away when the last user leaves
//	$ nsfs umount /
//	nsfs: / is not an nsfs mount (its filesystem is ext4): use umount(8) for it
var umountCommand = &cli.Command{
	Name:      "umount",
	Aliases:   []string{"unmount"},
	Usage:     "unmount an nsfs mount (lazily when busy; also a dead one)",
	ArgsUsage: "MOUNTPOINT",
	Description: `Unmounts the nsfs mount at MOUNTPOINT; its daemon then exits 0. When a
process still uses the mount (its working directory, an open file), the
mount is detached lazily: it leaves the tree at once and goes away, with its
daemon, when the last user leaves. A dead mount (its daemon was killed:
"Transport endpoint is not connected") is unmounted too, and so is the
mount of a daemon that does not answer for a second (hung, or killed while
stuck in the kernel): its FUSE connection is aborted first, so that every
request waiting for it fails instead of waiting forever. Anything else at
MOUNTPOINT is refused.`,
	Action: runUmount,
}

func runUmount(c *cli.Context) error {
	if c.NArg() != 1 {
		return errors.Errorf("umount: expected one MOUNTPOINT argument, got %d", c.NArg())
	}
	res, err := client.Unmount(c.Args().First())
	if err != nil {
		return err
	}
	if res.Hung {
		fmt.Printf("%s did not answer for a second (a hung or killed daemon): its connection was aborted\n", res.Dir)
	}
	switch {
	case res.Lazily && res.Dead:
		fmt.Printf("%s was busy: detached lazily (a dead mount: its daemon had died); it goes away when the last user leaves\n", res.Dir)
	case res.Lazily:
		fmt.Printf("%s was busy: detached lazily; it goes away when the last user leaves\n", res.Dir)
	case res.Dead:
		fmt.Printf("unmounted %s (a dead mount: its daemon had died)\n", res.Dir)
	default:
		fmt.Printf("unmounted %s\n", res.Dir)
	}
	return nil
}
