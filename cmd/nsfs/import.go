package main

import "github.com/urfave/cli/v2"

// importCommand reads an OCI image-layout tar or a docker save archive. (Being written.)
var importCommand = &cli.Command{
	Name:      "import",
	Usage:     "import images from an OCI image-layout tar or a docker save archive",
	ArgsUsage: "FILE|-",
}
