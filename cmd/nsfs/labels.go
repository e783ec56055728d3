package main

import (
	"strings"

	"github.com/nsfs/nsfs/client"
	"github.com/nsfs/nsfs/errdefs"
)

// parseLabels reads ctr-style label arguments: KEY=VALUE sets KEY, a
// bare KEY means KEY=true, and KEY= (an empty value) removes KEY.
//
//	nsfs namespaces label foo team=infra pinned old=
//
// An empty KEY is client.ErrInvalid; the rest of the label's rules are the
// client's and the filesystem's to apply.
func parseLabels(args []string) (map[string]string, error) {
	labels := make(map[string]string, len(args))
	for _, arg := range args {
		k, v, ok := strings.Cut(arg, "=")
		if !ok {
			v = "true"
		}
		if k == "" {
			return nil, errdefs.Errorf(client.ErrInvalid, "label %q: the key is empty", arg)
		}
		labels[k] = v
	}
	return labels, nil
}
