package main

import (
	"fmt"
	"time"

	"github.com/nsfs/nsfs/client"
	"github.com/urfave/cli/v2"
)

// importCommand reads an OCI image-layout tar or a docker save archive
// into the namespace, as `ctr images import` does (without unpacking):
//
//	$ nsfs images import redis.tar
//	docker.io/library/redis:latest saved
//	application/vnd.docker.distribution.manifest.v2+json sha256:…
//	Completed import elapsed: 0.1 s total: 30.1 MiB (301.0 MiB/s)
var importCommand = &cli.Command{
	Name:      "import",
	Usage:     "import images from an OCI image-layout tar or a docker save archive",
	ArgsUsage: "FILE|-",
	Description: `Reads an OCI image layout (oci-layout, index.json, blobs/sha256/...) or a
docker save archive (manifest.json), told apart by what the tar holds; it
may be gzipped. "-" reads stdin. Images are named as ctr import names them:
io.containerd.image.name, else org.opencontainers.image.ref.name, a bare
tag going into --base-name (default "import-YYYY-MM-DD"); docker save
RepoTags are normalized ("redis:latest" is docker.io/library/redis:latest).
Everything is checked before anything is written: a bad archive imports
nothing.`,
	Flags: []cli.Flag{
		&cli.StringFlag{
			Name:  "base-name",
			Usage: "the repository `NAME` for OCI ref names that are only a tag; when set, only images in it are imported",
		},
	},
	Action: func(c *cli.Context) error {
		if c.NArg() != 1 {
			return usageError(c, "one archive (or - for stdin) is needed")
		}
		// Interrupted, the import stops before it writes an image: the
		// blobs it sent stay, and the next import does not send them again.
		ctx, stop := interruptible(c)
		defer stop()
		ns, err := namespaceOf(c)
		if err != nil {
			return err
		}
		file := c.Args().First()
		start := time.Now()
		res, err := importArchive(ctx, ns, file, client.ImportOptions{BaseName: c.String("base-name")})
		if err != nil {
			what := "import " + file
			if file == "-" {
				what = "import from stdin"
			}
			if ctx.Err() != nil {
				return fmt.Errorf("%s: interrupted", what)
			}
			return fmt.Errorf("%s: %w", what, err)
		}
		elapsed := time.Since(start)
		tw := newTable(c.App.Writer)
		for _, img := range res.Images {
			fmt.Fprintf(tw, "%s\tsaved\n", img.Ref)
		}
		for _, img := range res.Images {
			fmt.Fprintf(tw, "%s %s\n", img.Target.MediaType, img.Target.Digest)
		}
		var rate float64
		if elapsed > 0 {
			rate = float64(res.Sent) / elapsed.Seconds()
		}
		fmt.Fprintf(tw, "Completed import\telapsed: %-4.1fs\ttotal: %7s\t(%s/s)\n",
			elapsed.Seconds(), formatBytes(res.Sent), formatBytes(int64(rate)))
		return tw.Flush()
	},
}
