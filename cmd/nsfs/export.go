package main

import "github.com/urfave/cli/v2"

// exportCommand writes images as an OCI image-layout tar. (Being written.)
var exportCommand = &cli.Command{
	Name:      "export",
	Usage:     "export images as an OCI image-layout tar that docker load also reads",
	ArgsUsage: "FILE REF...",
}
