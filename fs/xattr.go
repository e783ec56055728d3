package fs

import (
	"context"
	"strings"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/nsfs/nsfs/metadata"
	"github.com/nsfs/nsfs/xattr"
	"github.com/pkg/errors"
)

// Labels are extended attributes in the user. namespace:
//
//	$ setfattr -n user.team -v infra ns/dev
//	$ getfattr -d ns/dev
//	user.team="infra"
//	$ getfattr -n security.selinux ns/dev
//	ns/dev: security.selinux: Operation not supported
//	$ setfattr -n trusted.x -v 1 ns/dev
//	setfattr: ns/dev: Operation not supported
//
// Every name outside user. answers EOPNOTSUPP (ENOTSUP), to get, set and
// remove alike: GNU ls and cp remember that answer for the whole
// filesystem and stop probing security.selinux and
// system.posix_acl_access on every file, which ENODATA would not make
// them do (a round trip per file and probe: ls -l many times slower).

// labelSubject is a node that carries labels.
type labelSubject interface {
	// labelObject names the object whose labels the node shows, and
	// how the log names it ("ns/dev/images/redis:latest").
	labelObject() (obj metadata.Object, name string, errno syscall.Errno)
}

// labelXattrs implements the xattr methods for namespace dirs, image files
// and blob files: it is embedded in them, with subject set to the node.
type labelXattrs struct {
	db      *metadata.DB
	subject labelSubject
}

var (
	_ = (gofs.NodeGetxattrer)((*labelXattrs)(nil))
	_ = (gofs.NodeSetxattrer)((*labelXattrs)(nil))
	_ = (gofs.NodeRemovexattrer)((*labelXattrs)(nil))
	_ = (gofs.NodeListxattrer)((*labelXattrs)(nil))
)

// Getxattr reads the one label asked for. A name outside user. is
// EOPNOTSUPP without touching the store or the error path (tools probe
// for security.* and system.* on every file); a missing label is ENODATA.
func (x *labelXattrs) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	key, errno := labelKey("getxattr", attr, notUserXattr)
	if errno != 0 {
		return 0, errno
	}
	obj, name, errno := x.subject.labelObject()
	if errno != 0 {
		return 0, errno
	}
	value, err := x.db.Labels().Get(obj, key)
	if err != nil {
		return 0, toErrno("getxattr "+name+" "+attr, err)
	}
	return getValue(value, dest)
}

// notUserXattr answers every xattr call on a name outside user.
// (EOPNOTSUPP; never ENOSYS, which would turn xattrs off for the mount).
const notUserXattr = syscall.ENOTSUP

// labelKey is the label key of xattr name attr; a name outside user. is
// answered with notUser.
func labelKey(op, attr string, notUser syscall.Errno) (string, syscall.Errno) {
	// The common case first, without building an error: tools probe
	// system.posix_acl_access and the like on every file.
	if attr != "" && len(attr) <= xattr.MaxNameLen && !strings.HasPrefix(attr, xattr.UserPrefix) {
		return "", notUser
	}
	key, err := xattr.Key(attr)
	if err != nil {
		if errors.Is(err, xattr.ErrNotSupported) {
			return "", notUser
		}
		return "", toErrno(op+" "+attr, err)
	}
	return key, 0
}

// getValue answers getxattr with a label's value (ERANGE when dest is too
// small, with the size needed).
func getValue(value string, dest []byte) (uint32, syscall.Errno) {
	n, err := xattr.Get(dest, value)
	if err != nil {
		return n, syscall.ERANGE
	}
	return n, 0
}

// Setxattr sets a label; an empty value removes it (containerd has no
// empty labels), so XATTR_CREATE with one is EINVAL; XATTR_CREATE /
// XATTR_REPLACE are checked inside the transaction that writes.
func (x *labelXattrs) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	key, cond, errno := parseSetxattr(attr, data, flags)
	if errno != 0 {
		return errno
	}
	obj, name, errno := x.subject.labelObject()
	if errno != 0 {
		return errno
	}
	// string(data) copies: go-fuse reuses the buffer.
	if err := x.db.Labels().Set(obj, key, string(data), cond.Check); err != nil {
		return toErrno("setxattr "+name+" "+attr, err)
	}
	return 0
}

func parseSetxattr(attr string, data []byte, flags uint32) (string, xattr.Condition, syscall.Errno) {
	// cp -a and mv try system.posix_acl_access on every file: routine.
	key, errno := labelKey("setxattr", attr, notUserXattr)
	if errno != 0 {
		return "", 0, errno
	}
	cond, err := xattr.ParseFlags(flags)
	if err == nil {
		err = cond.CheckValue(data)
	}
	if err != nil {
		return "", 0, toErrno("setxattr "+attr, err)
	}
	return key, cond, 0
}

// Removexattr removes a label (ENODATA when absent).
func (x *labelXattrs) Removexattr(ctx context.Context, attr string) syscall.Errno {
	key, errno := labelKey("removexattr", attr, notUserXattr)
	if errno != 0 {
		return errno
	}
	obj, name, errno := x.subject.labelObject()
	if errno != 0 {
		return errno
	}
	if err := x.db.Labels().Remove(obj, key); err != nil {
		return toErrno("removexattr "+name+" "+attr, err)
	}
	return 0
}

// Listxattr lists user.<key> for every label.
func (x *labelXattrs) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	obj, name, errno := x.subject.labelObject()
	if errno != 0 {
		return 0, errno
	}
	labels, err := x.db.Labels().All(obj)
	if err != nil {
		return 0, toErrno("listxattr "+name, err)
	}
	return listLabels(labels, dest)
}

func listLabels(labels map[string]string, dest []byte) (uint32, syscall.Errno) {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	n, err := xattr.List(dest, keys)
	if err != nil {
		return n, syscall.ERANGE
	}
	return n, 0
}

// noXattrs implements the xattr methods for nodes without labels (the
// root, ns/, images/ and the directories below it, blobs/, blobs/sha256):
// for a user. name get and remove → ENODATA, set → ENOTSUP; any other
// name EOPNOTSUPP (ENOTSUP); list → empty.
type noXattrs struct{}

var (
	_ = (gofs.NodeGetxattrer)((*noXattrs)(nil))
	_ = (gofs.NodeSetxattrer)((*noXattrs)(nil))
	_ = (gofs.NodeRemovexattrer)((*noXattrs)(nil))
	_ = (gofs.NodeListxattrer)((*noXattrs)(nil))
)

func (noXattrs) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if _, errno := labelKey("getxattr", attr, notUserXattr); errno != 0 {
		return 0, errno
	}
	return 0, syscall.ENODATA
}

func (noXattrs) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if _, errno := labelKey("setxattr", attr, notUserXattr); errno != 0 {
		return errno
	}
	return syscall.ENOTSUP
}

func (noXattrs) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if _, errno := labelKey("removexattr", attr, notUserXattr); errno != 0 {
		return errno
	}
	return syscall.ENODATA
}

func (noXattrs) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return 0, 0
}
