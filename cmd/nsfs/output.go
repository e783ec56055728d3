package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

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
// none is empty. A key or value that would make the column ambiguous is
// quoted (quoteLabelPart).
func joinLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	pairs := make([]string, 0, len(labels))
	for _, k := range keys {
		pairs = append(pairs, quoteLabelPart(k, "=,")+"="+quoteLabelPart(labels[k], ","))
	}
	return strings.Join(pairs, ",")
}

// quoteName prints a name (an image ref) the way GNU ls does with
// --quoting-style=shell-escape, so that a column of names stays
// unambiguous and can be pasted into a shell: a name of ordinary
// characters as it is; one with blanks, quotes, backslashes or shell
// metacharacters in single quotes ('app: v1 '), a single quote inside as
// '\”; unprintable bytes as $'\ooo' between quoted runs.
func quoteName(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool { return !plainRune(r) }) &&
		!strings.HasPrefix(s, "#") && !strings.HasPrefix(s, "~") && s != "{" && s != "}" {
		return s
	}
	return shellQuote(s)
}

// plainRune is a character GNU ls leaves unquoted anywhere in a name:
// letters, digits, printable non-ASCII, and %+,-./:@_]{}#~ (the last two
// only after the first character; quoteName checks that).
func plainRune(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	case r >= utf8.RuneSelf:
		return r != utf8.RuneError && unicode.IsPrint(r)
	}
	return strings.ContainsRune("%+,-./:@_]{}#~", r)
}

// quoteLabelPart quotes a label key or value in the labels column only
// when it must: when it has a blank or an unprintable character, a quote
// or a backslash, or one of specials (the separators ',' and, in a key,
// '='). ctr prints labels raw, and so does this otherwise (note=a=b).
func quoteLabelPart(s, specials string) string {
	if strings.ContainsFunc(s, func(r rune) bool {
		return r == ' ' || r == '\'' || r == '"' || r == '\\' || strings.ContainsRune(specials, r) ||
			r == utf8.RuneError || !unicode.IsPrint(r)
	}) {
		return shellQuote(s)
	}
	return s
}

// shellQuote always quotes: printable runs in single quotes (a single
// quote as \'), every other byte in $'...' (\n, \t and the like, else
// \ooo), as GNU ls does: 'a'$'\n”b'.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	const (
		bare   = iota
		quoted // inside '...'
		escape // inside $'...'
	)
	var b strings.Builder
	state := bare
	enter := func(to int) {
		if state == to {
			return
		}
		if state != bare {
			b.WriteByte('\'')
		}
		switch to {
		case quoted:
			b.WriteByte('\'')
		case escape:
			b.WriteString("$'")
		}
		state = to
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '\'':
			enter(bare)
			b.WriteString(`\'`)
		case (r == utf8.RuneError && size <= 1) || !unicode.IsPrint(r):
			enter(escape)
			for _, c := range []byte(s[i : i+size]) {
				if e := strings.IndexByte("\a\b\t\n\v\f\r", c); e >= 0 {
					b.WriteByte('\\')
					b.WriteByte("abtnvfr"[e])
				} else {
					fmt.Fprintf(&b, "\\%03o", c)
				}
			}
		default:
			enter(quoted)
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	enter(bare)
	return b.String()
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
