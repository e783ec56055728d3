package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
)

// newTable is the tabwriter ctr prints its tables with: columns one space
// apart, padded with spaces.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 1, 8, 1, ' ', 0)
}

// formatBytes prints a size as ctr's progress.Bytes does: binary units,
// one decimal ("0.0 B", "512.0 B", "1.5 KiB", "3.1 MiB").
func formatBytes(n int64) string {
	return customSize("%02.1f %s", float64(n), 1024, []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"})
}

// humanSize prints a size as docker's units.HumanSize does (ctr content
// ls): decimal units, four significant digits ("977B", "1.234kB", "5MB").
func humanSize(n int64) string {
	return customSize("%.4g%s", float64(n), 1000, []string{"B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"})
}

// customSize divides size by base until it is below base (or the units
// run out) and prints it with its unit.
func customSize(format string, size, base float64, units []string) string {
	i := 0
	for size >= base && i < len(units)-1 {
		size /= base
		i++
	}
	return fmt.Sprintf(format, size, units[i])
}

// humanDuration prints an age as docker's units.HumanDuration does (ctr
// content ls): "Less than a second", "5 seconds", "About a minute", ...
func humanDuration(d time.Duration) string {
	if seconds := int(d.Seconds()); seconds < 1 {
		return "Less than a second"
	} else if seconds == 1 {
		return "1 second"
	} else if seconds < 60 {
		return fmt.Sprintf("%d seconds", seconds)
	} else if minutes := int(d.Minutes()); minutes == 1 {
		return "About a minute"
	} else if minutes < 60 {
		return fmt.Sprintf("%d minutes", minutes)
	} else if hours := int(d.Hours() + 0.5); hours == 1 {
		return "About an hour"
	} else if hours < 48 {
		return fmt.Sprintf("%d hours", hours)
	} else if hours < 24*7*2 {
		return fmt.Sprintf("%d days", hours/24)
	} else if hours < 24*30*2 {
		return fmt.Sprintf("%d weeks", hours/24/7)
	} else if hours < 24*365*2 {
		return fmt.Sprintf("%d months", hours/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

// joinLabels prints labels as ctr does: k=v pairs, sorted, comma-joined;
// none is empty.
func joinLabels(labels map[string]string) string {
	pairs := make([]string, 0, len(labels))
	for k, v := range labels {
		pairs = append(pairs, k+"="+v)
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

// orDash is s, or "-" for an empty column (ctr's images and content ls).
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// failures is what a command that goes on past a failure (rm of several
// names, as ctr does) has to report: each failure is printed as
// "nsfs: ..." when the next one comes, and the last is returned for main
// to print, so that every failure is one line and the command exits 1.
type failures struct {
	w    io.Writer
	last error
}

func (f *failures) add(err error) {
	if f.last != nil {
		fmt.Fprintf(f.w, "nsfs: %v\n", f.last)
	}
	f.last = err
}

// err is the failure main prints, or nil when all went well.
func (f *failures) err() error { return f.last }

// usageError is a wrong number of arguments, said in one line with the
// command's usage, named as the user typed it:
//
//	nsfs: images rm: at least one image REF is required (usage: nsfs images rm REF...)
func usageError(c *cli.Context, problem string) error {
	path := commandPath(c)
	name := strings.TrimPrefix(path, c.App.Name+" ")
	usage := strings.TrimSpace(path + " " + strings.TrimSpace(c.Command.ArgsUsage))
	return fmt.Errorf("%s: %s (usage: %s)", name, problem, usage)
}
