package main

import "github.com/urfave/cli/v2"

// imagesCommand: ls, rm, tag, and the transfers pull, import, export
// (pull.go, import.go, export.go). (Being written.)
var imagesCommand = &cli.Command{
	Name:        "images",
	Aliases:     []string{"image", "i"},
	Usage:       "manage images",
	Subcommands: []*cli.Command{pullCommand, importCommand, exportCommand},
}
