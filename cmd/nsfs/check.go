package main

import (
	"fmt"
	"strings"

	"github.com/nsfs/nsfs/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/pkg/errors"
	"github.com/urfave/cli/v2"
)

// imagesCheckCommand is `nsfs images check`, as `ctr images check`: for
// each image, whether the namespace can see every blob it needs, and
// which it cannot.
//
//	$ nsfs images check
//	REF    TYPE                                       DIGEST         STATUS          SIZE              MISSING
//	app:v1 application/vnd.oci.image.manifest.v1+json sha256:1979e5… complete (4/4)  15.7 MiB/15.7 MiB -
//	app:v2 application/vnd.oci.image.manifest.v1+json sha256:7c1b2d… incomplete (3/4) 3.7 MiB/15.7 MiB sha256:0167e8…
var imagesCheckCommand = &cli.Command{
	Name:      "check",
	Usage:     "check that the namespace can see every blob of its images",
	ArgsUsage: "[REF...]",
	Description: `An image may name blobs its namespace cannot see yet (a backup restored in
tar's order writes images before blobs): it is incomplete until they arrive,
and claims each one as it does. STATUS counts the blobs the image needs (its
manifest or index included; below an index, those of the platform, the
host's by default) and those present; SIZE adds up their bytes; MISSING
names the digests the namespace cannot see. Without REF, every image.

The exit status is 1 when an image checked is incomplete (after the
table, and one line on stderr), or cannot be read; 0 when all are complete.`,
	Flags: []cli.Flag{
		&cli.StringFlag{Name: "platform", Usage: "below an index, check the manifest of platform `P` (default: the host's, " + client.FormatPlatform(client.HostPlatform()) + ")"},
		&cli.BoolFlag{Name: "all-platforms", Usage: "below an index, check every platform"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the refs of incomplete images"},
	},
	Action: func(c *cli.Context) error {
		var platform *ocispec.Platform
		switch {
		case c.IsSet("platform") && c.Bool("all-platforms"):
			return errors.New("--platform and --all-platforms exclude each other")
		case c.IsSet("platform"):
			p, err := client.ParsePlatform(c.String("platform"))
			if err != nil {
				return err
			}
			platform = &p
		case !c.Bool("all-platforms"):
			host := client.HostPlatform()
			platform = &host
		}
		ns, err := namespaceOf(c)
		if err != nil {
			return err
		}
		statuses, err := ns.CheckImages(c.Args().Slice(), platform)
		if err != nil {
			return err
		}
		out := c.App.Writer
		if c.Bool("quiet") {
			for _, st := range statuses {
				if !st.Complete() {
					fmt.Fprintln(out, quoteName(st.Ref))
				}
			}
			return incompleteError(statuses)
		}
		tw := newTable(out)
		fmt.Fprintln(tw, "REF\tTYPE\tDIGEST\tSTATUS\tSIZE\tMISSING\t")
		for _, st := range statuses {
			status := "complete"
			if !st.Complete() {
				status = "incomplete"
			}
			var missing []string
			for _, d := range st.Missing {
				missing = append(missing, string(d.Digest))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s (%d/%d)\t%s/%s\t%s\t\n",
				quoteName(st.Ref), st.MediaType, st.Digest, status, st.Present, st.Required,
				formatBytes(st.PresentSize), formatBytes(st.RequiredSize), orDash(strings.Join(missing, ",")))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		return incompleteError(statuses)
	},
}

// incompleteError makes `nsfs images check` exit 1 when an image it
// checked is incomplete, after the table, so that `nsfs images check &&
// deploy` stops there (an image that cannot be read is an error already):
//
//	nsfs: 1 of 2 images checked is incomplete
func incompleteError(statuses []client.ImageStatus) error {
	incomplete := 0
	for _, st := range statuses {
		if !st.Complete() {
			incomplete++
		}
	}
	switch {
	case incomplete == 0:
		return nil
	case incomplete == 1:
		return fmt.Errorf("1 of %d images checked is incomplete", len(statuses))
	}
	return fmt.Errorf("%d of %d images checked are incomplete", incomplete, len(statuses))
}

// formatImageSize is the SIZE of `nsfs images ls`: what the namespace
// holds of the image, marked while the image is incomplete.
func formatImageSize(img client.Image) string {
	if img.Incomplete {
		return formatBytes(img.Size) + " (incomplete)"
	}
	return formatBytes(img.Size)
}
