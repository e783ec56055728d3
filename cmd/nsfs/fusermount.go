package main

import (
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"syscall"

	"github.com/pkg/errors"
)

// fusermountCode is go-fuse's message when fusermount fails at mount: it
// prints the raw wait status ("exited with code 256" for exit status 1).
// Compiled at the first failed mount, not by every CLI process.
var fusermountCode = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`fusermount exited with code (\d+)\s*`)
})

// fusermountError says a failed fusermount's exit status (or signal) as
// a shell would, instead of the wait status go-fuse prints; any other
// error is returned as it is.
func fusermountError(err error) error {
	if err == nil {
		return nil
	}
	m := fusermountCode().FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	raw, perr := strconv.ParseUint(m[1], 10, 32)
	if perr != nil {
		return err
	}
	status := syscall.WaitStatus(raw)
	var said string
	switch {
	case status.Exited():
		said = fmt.Sprintf("fusermount exited with status %d (its message, if any, is above)", status.ExitStatus())
	case status.Signaled():
		said = fmt.Sprintf("fusermount was killed by signal %d (%v)", int(status.Signal()), status.Signal())
	default:
		return err
	}
	return errors.New(fusermountCode().ReplaceAllLiteralString(err.Error(), said))
}
