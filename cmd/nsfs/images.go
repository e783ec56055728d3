package main

import (
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"
)

// imagesCommand: ls, rm, tag (here), and the transfers pull, import,
// export (pull.go, import.go, export.go), as `ctr images`.
var imagesCommand = &cli.Command{
	Name:    "images",
	Aliases: []string{"image", "i"},
	Usage:   "manage images",
	Subcommands: []*cli.Command{
		imagesListCommand,
		imagesRemoveCommand,
		imagesTagCommand,
		imagesCheckCommand,
		imagesPullCommand,
		imagesPushCommand,
		importCommand,
		exportCommand,
	},
}

// imagesPullCommand is `nsfs images pull`: pullCommand under its own
// *cli.Command, because urfave/cli names a command in its help (and in
// its usage errors) by the first parent that sets it up; one value under
// both `nsfs` and `nsfs images` would call itself `nsfs pull` in both.
// The copy shares pullCommand's Flags and Action.
var imagesPullCommand = func() *cli.Command {
	c := *pullCommand
	return &c
}()

var imagesListCommand = &cli.Command{
	Name:      "list",
	Aliases:   []string{"ls"},
	Usage:     "list the images of the namespace",
	ArgsUsage: " ",
	Description: `SIZE is what the namespace holds of the image: the manifest or index,
and the manifests, configs and layers below it in blobs/sha256; it ends in
"(incomplete)" while the image names blobs the namespace cannot see yet
(nsfs images check says which). A ref with
blanks, quotes or shell metacharacters is printed quoted as GNU ls quotes
file names ('app: v1 ', 'it'\''s'), also with -q.`,
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the refs"},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() > 0 {
			return usageError(c, "no arguments are taken")
		}
		ns, err := namespaceOf(c)
		if err != nil {
			return err
		}
		out := c.App.Writer
		if c.Bool("quiet") {
			// Names only: the images are not opened.
			refs, err := ns.Refs()
			if err != nil {
				return err
			}
			for _, ref := range refs {
				fmt.Fprintln(out, quoteName(ref))
			}
			return nil
		}
		images, err := ns.Images()
		if err != nil {
			return err
		}
		tw := newTable(out)
		fmt.Fprintln(tw, "REF\tTYPE\tDIGEST\tSIZE\tPLATFORMS\tLABELS\t")
		for _, img := range images {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n",
				quoteName(img.Ref), img.MediaType, img.Digest, formatImageSize(img),
				orDash(strings.Join(img.Platforms, ",")), orDash(joinLabels(img.Labels)))
		}
		return tw.Flush()
	},
}

var imagesRemoveCommand = &cli.Command{
	Name:      "remove",
	Aliases:   []string{"rm", "delete", "del"},
	Usage:     "remove images (rm images/REF); blobs only they held go too",
	ArgsUsage: "REF...",
	Description: `Each removed ref is printed. A ref that is not there is an error; the
others are still removed, and the command exits 1.`,
	Action: func(c *cli.Context) error {
		if c.NArg() < 1 {
			return usageError(c, "at least one image REF is required")
		}
		ns, err := namespaceOf(c)
		if err != nil {
			return err
		}
		failed := failures{w: c.App.ErrWriter}
		for _, ref := range c.Args().Slice() {
			if err := ns.RemoveImage(ref); err != nil {
				failed.add(err)
				continue
			}
			fmt.Fprintln(c.App.Writer, ref)
		}
		return failed.err()
	},
}

var imagesTagCommand = &cli.Command{
	Name:      "tag",
	Usage:     "make more refs to an image's target (ln images/SRC images/DST)",
	ArgsUsage: "SRC DST... [--force]",
	Description: `Each new ref is printed; it gets a copy of SRC's labels. An existing
DST is an error unless --force, which replaces it atomically.`,
	Flags: []cli.Flag{
		&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "replace a DST that exists"},
	},
	Action: func(c *cli.Context) error {
		// The usage puts --force last, where urfave/cli no longer parses
		// flags.
		force := c.Bool("force")
		var args []string
		for _, arg := range c.Args().Slice() {
			if arg == "--force" || arg == "-force" || arg == "-f" {
				force = true
				continue
			}
			args = append(args, arg)
		}
		if len(args) < 2 {
			return usageError(c, "a SRC and at least one DST are required")
		}
		ns, err := namespaceOf(c)
		if err != nil {
			return err
		}
		for _, dst := range args[1:] {
			if err := ns.TagImage(args[0], dst, force); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, dst)
		}
		return nil
	},
}
