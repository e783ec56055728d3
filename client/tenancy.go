package client

import (
	"os/user"
	"strconv"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Tenancy is who a namespace belongs to and what it holds, as the mount
// shows them: the owner from stat, the rest from root's xattrs
// trusted.nsfs.{held,only,quota}, which only root can read (the kernel
// answers others as if they were absent).
type Tenancy struct {
	UID, GID uint32
	Mode     uint32 // permission bits
	Owner    string // the owner's user name, else its uid
	// Known: the caller could read Held, Only and Quota (root).
	Known      bool
	Held, Only int64 // bytes it holds; bytes only it holds
	Quota      int64 // -1: none
}

// Tenancy reads the owner and usage of namespace name; what cannot be
// read stays zero (Owner "", Known false).
func (m Mount) Tenancy(name string) Tenancy {
	var t Tenancy
	dir := m.NamespaceDir(name)
	var st unix.Stat_t
	if unix.Stat(dir, &st) == nil {
		t.UID, t.GID, t.Mode = st.Uid, st.Gid, st.Mode&0o777
		t.Owner = strconv.FormatUint(uint64(st.Uid), 10)
		if u, err := user.LookupId(t.Owner); err == nil {
			t.Owner = u.Username
		}
	}
	held, errHeld := readSize(dir, "held")
	only, errOnly := readSize(dir, "only")
	if errHeld != nil || errOnly != nil {
		return t
	}
	quota, err := readSize(dir, "quota")
	if errors.Is(err, unix.ENODATA) {
		quota, err = -1, nil
	}
	if err != nil {
		return t
	}
	t.Known, t.Held, t.Only, t.Quota = true, held, only, quota
	return t
}

// readSize reads trusted.nsfs.<key>, a decimal number of bytes.
func readSize(dir, key string) (int64, error) {
	v, err := getXattr(dir, "trusted.nsfs."+key)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(v, 10, 64)
}
