package main

import (
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"
)

// contentCommand: ls, get, as `ctr content`.
var contentCommand = &cli.Command{
	Name:  "content",
	Usage: "list and read the blobs of a namespace",
	Subcommands: []*cli.Command{
		contentListCommand,
		contentGetCommand,
	},
}

var contentListCommand = &cli.Command{
	Name:      "list",
	Aliases:   []string{"ls"},
	Usage:     "list the blobs the namespace holds (ls blobs/sha256)",
	ArgsUsage: " ",
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the digests"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() > 0 {
			return usageError(c, "no arguments are taken")
		}
		ns, err := namespaceOf(c)
		if err != nil {
			return err
		}
		blobs, err := ns.Blobs()
		if err != nil {
			return err
		}
		out := c.App.Writer
		if c.Bool("quiet") {
			for _, b := range blobs {
				fmt.Fprintln(out, b.Digest)
			}
			return nil
		}
		tw := newTable(out)
		fmt.Fprintln(tw, "DIGEST\tSIZE\tAGE\tLABELS")
		now := time.Now()
		for _, b := range blobs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", b.Digest, humanSize(b.Size), humanDuration(now.Sub(b.Created)), orDash(joinLabels(b.Labels)))
		}
		return tw.Flush()
	},
}

var contentGetCommand = &cli.Command{
	Name:      "get",
	Usage:     "write a blob's bytes to stdout (cat blobs/sha256/HEX)",
	ArgsUsage: "DIGEST",
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return usageError(c, "one DIGEST is required")
		}
		ns, err := namespaceOf(c)
		if err != nil {
			return err
		}
		f, err := ns.OpenBlob(c.Args().First())
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := io.CopyBuffer(c.App.Writer, f, make([]byte, 1<<20)); err != nil {
			return fmt.Errorf("content digest %s: %w", c.Args().First(), err)
		}
		return nil
	},
}
