// Command nsfs serves an nsfs store as a filesystem and works on a mounted
// one as ctr does on containerd. Each command lives in its own file
// (mount.go, namespaces.go, images.go, ...) and is listed in commands below.
package main

import (
	"fmt"
	"log"
	"os"

	"github.com/nsfs/nsfs/client"
	"github.com/urfave/cli/v2"
)

// commands are the subcommands, in the order help lists them.
var commands = []*cli.Command{
	mountCommand,
	namespacesCommand,
	imagesCommand,
	contentCommand,
	pullCommand,
}

// globalFlags choose the mount and the namespace every other command
// works on, as ctr's --namespace does.
var globalFlags = []cli.Flag{
	&cli.StringFlag{
		Name:    "mount",
		Usage:   "the nsfs mountpoint `DIR` to work on (default: the one fuse.nsfs mount)",
		EnvVars: []string{"NSFS_MOUNT"},
	},
	&cli.StringFlag{
		Name:    "namespace",
		Aliases: []string{"n"},
		Usage:   "the namespace `NAME` to work in",
		EnvVars: []string{"NSFS_NAMESPACE", "CONTAINERD_NAMESPACE"},
		Value:   "default",
	},
}

func newApp() *cli.App {
	return &cli.App{
		Name:     "nsfs",
		Usage:    "container image namespaces as a filesystem",
		Flags:    globalFlags,
		Commands: commands,
		// Errors are printed once, by main, as "nsfs: ...".
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

// mountOf resolves the mount a command works on (--mount, NSFS_MOUNT, the
// one fuse.nsfs mount).
func mountOf(c *cli.Context) (client.Mount, error) {
	return client.FindMount(c.String("mount"))
}

// namespaceOf resolves the mount and the namespace a command works on
// (-n, NSFS_NAMESPACE, CONTAINERD_NAMESPACE, default).
func namespaceOf(c *cli.Context) (client.Namespace, error) {
	m, err := mountOf(c)
	if err != nil {
		return client.Namespace{}, err
	}
	return m.Namespace(c.String("namespace")), nil
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("nsfs: ")
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "nsfs: %v\n", err)
		os.Exit(1)
	}
}
