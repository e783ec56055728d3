package main

import "github.com/urfave/cli/v2"

// contentCommand: ls, get. (Being written.)
var contentCommand = &cli.Command{
	Name:  "content",
	Usage: "list and read the blobs of a namespace",
}
