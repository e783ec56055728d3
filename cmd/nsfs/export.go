package main

import (
	"fmt"

	"github.com/nsfs/nsfs/client"
	"github.com/urfave/cli/v2"
)

// exportCommand writes images as an OCI image-layout tar that also
// carries Docker's manifest.json, as `ctr images export` does:
//
//	$ nsfs images export redis.tar docker.io/library/redis:latest
//	$ skopeo copy docker-archive:redis.tar dir:/tmp/redis
var exportCommand = &cli.Command{
	Name:      "export",
	Usage:     "export images as an OCI image-layout tar that docker load also reads",
	ArgsUsage: "FILE|- REF...",
	Description: `Writes the images REF... of the namespace to FILE ("-": stdout) as an OCI
image layout (oci-layout, index.json, blobs/sha256/...) that also holds
Docker's manifest.json, so ctr import, docker load, and skopeo's
oci-archive: and docker-archive: all read it. index.json names each image
as containerd does: io.containerd.image.name is the ref,
org.opencontainers.image.ref.name its tag. An index goes with the
manifests of it the namespace holds; manifest.json names the one for
--platform, and an index with no manifest for it that the namespace holds
is an error; without --platform, this host's, else the first one the
namespace holds. FILE is written whole or not at all.`,
	Flags: []cli.Flag{
		&cli.StringFlag{
			Name:  "platform",
			Usage: "for an index, the `PLATFORM` (os/arch[/variant]) whose manifest Docker's manifest.json names",
		},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() < 2 {
			return usageError(c, "an output file (or - for stdout) and at least one ref are needed")
		}
		// Interrupted, the export removes its temporary file: FILE is
		// written whole or not at all.
		ctx, stop := interruptible(c)
		defer stop()
		var opts client.ExportOptions
		if p := c.String("platform"); p != "" {
			platform, err := client.ParsePlatform(p)
			if err != nil {
				return err
			}
			opts.Platform = platform
		}
		ns, err := namespaceOf(c)
		if err != nil {
			return err
		}
		file := c.Args().First()
		if err := exportArchive(ctx, ns, file, c.Args().Tail(), opts); err != nil {
			what := "export " + file
			if file == "-" {
				what = "export"
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%s: interrupted", what)
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	},
}
