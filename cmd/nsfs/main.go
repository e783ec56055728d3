// Command nsfs serves an nsfs store as a filesystem and, later, works on a
// mounted one as ctr does on containerd. Each command lives in its own file
// (mount.go, ...) and is listed in commands below.
package main

import (
	"fmt"
	"log"
	"os"

	"github.com/urfave/cli/v2"
)

// commands are the subcommands, in the order help lists them.
var commands = []*cli.Command{
	mountCommand,
}

func newApp() *cli.App {
	return &cli.App{
		Name:     "nsfs",
		Usage:    "container image namespaces as a filesystem",
		Commands: commands,
		// Errors are printed once, by main, as "nsfs: ...".
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("nsfs: ")
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintf(os.Stderr, "nsfs: %v\n", err)
		os.Exit(1)
	}
}
