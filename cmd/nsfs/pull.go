package main

import "github.com/urfave/cli/v2"

// pullCommand fetches an image from a registry into a namespace. (Being written.)
var pullCommand = &cli.Command{
	Name:      "pull",
	Usage:     "fetch an image from a registry into the namespace",
	ArgsUsage: "REF",
}
