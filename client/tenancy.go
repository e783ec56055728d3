package client

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"github.com/nsfs/nsfs/errdefs"
	"github.com/opencontainers/go-digest"
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

// overQuota explains err, an EDQUOT of a pull into n: by how much the
// blobs of the image that n does not hold yet (wanted, its blobs and
// their sizes) pass what n's quota leaves. Root reads the store's
// counters; another user gets df's figures, in 4 KiB blocks.
func (n Namespace) overQuota(err error, wanted map[digest.Digest]int64) error {
	entries, _ := os.ReadDir(n.BlobsDir()) // what n holds
	held := make(map[string]bool, len(entries))
	for _, e := range entries {
		held[e.Name()] = true
	}
	var need int64
	for d, size := range wanted {
		if !held[d.Encoded()] {
			need += size
		}
	}
	t := n.Mount.Tenancy(n.Name)
	quota, used := t.Quota, t.Held
	if !t.Known {
		var st unix.Statfs_t
		if unix.Statfs(n.Dir(), &st) != nil {
			return errors.Wrapf(err, "namespace %q", n.Name)
		}
		quota, used = int64(st.Blocks)*st.Frsize, int64(st.Blocks-st.Bfree)*st.Frsize
	}
	return errdefs.Errorf(errdefs.ErrQuota, "namespace %q: disk quota exceeded: the image needs %s the namespace does not hold yet, %s more than its quota of %s leaves (it holds %s)",
		n.Name, sizeString(need), sizeString(max(0, used+need-quota)), sizeString(quota), sizeString(used))
}

// sizeString is a size as the pull's progress prints it, with the bytes.
func sizeString(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatInt(n, 10) + " B"
	}
	return fmt.Sprintf("%.1f %s (%d bytes)", f, units[i], n)
}

// removeEmptyDirs removes what it can of dirs, in order (deepest first):
// one that holds something stays.
func removeEmptyDirs(dirs []string) {
	for _, dir := range dirs {
		_ = unix.Rmdir(dir)
	}
}

// SetQuota sets the namespace's quota to bytes (root only: setfattr -n
// trusted.nsfs.quota); a negative number removes it.
func (n Namespace) SetQuota(bytes int64) error {
	dir := n.Dir()
	var err error
	if bytes < 0 {
		err = unix.Removexattr(dir, "trusted.nsfs.quota")
		if errors.Is(err, unix.ENODATA) {
			err = nil
		}
	} else {
		err = unix.Setxattr(dir, "trusted.nsfs.quota", []byte(strconv.FormatInt(bytes, 10)), 0)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM):
		return errors.Errorf("namespace %q: only root can set a quota", n.Name)
	}
	return namespaceError(n.Name, DaemonGone(err, n.Mount.Dir))
}

// dropStored removes the blobs a pull that failed on the quota wrote into
// n: nothing of the image was kept, so no image of n references them
// (and if one came to, the filesystem refuses with EBUSY and it stays).
func (n Namespace) dropStored(blobs []digest.Digest) {
	for _, d := range blobs {
		if d.Validate() == nil {
			_ = os.Remove(filepath.Join(n.BlobsDir(), d.Encoded()))
		}
	}
}
