package fs

import (
	"context"
	"strings"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/nsfs/nsfs/metadata"
)

// Root's settings of a namespace are xattrs trusted.nsfs.<setting> on
// ns/<name> (the kernel lets only CAP_SYS_ADMIN read or write trusted.*;
// metadata checks the caller is root too). They are not listed: a
// listing shows labels only. Every other name is the labels' (labelXattrs).
//
//	# setfattr -n trusted.nsfs.quota -v 100M /mnt/ns/bob
//	# getfattr -n trusted.nsfs.quota /mnt/ns/bob
//	trusted.nsfs.quota="104857600"
//	# setfattr -n trusted.nsfs.sharing -v isolated /mnt/ns/bob
//	# setfattr -x trusted.nsfs.quota /mnt/ns/bob
//	bob$ setfattr -n trusted.nsfs.quota -v 1T /mnt/ns/bob
//	setfattr: /mnt/ns/bob: Operation not permitted
var (
	_ = (gofs.NodeGetxattrer)((*namespaceDir)(nil))
	_ = (gofs.NodeSetxattrer)((*namespaceDir)(nil))
	_ = (gofs.NodeRemovexattrer)((*namespaceDir)(nil))
)

// settingPrefix starts the xattr name of a setting.
const settingPrefix = "trusted.nsfs."

// settingOf is the setting xattr attr names, if it names one: ok is false
// for any name that does not start with settingPrefix; errno is ENOTSUP
// for a trusted.nsfs. name that is no setting.
func settingOf(attr string) (key string, ok bool, errno syscall.Errno) {
	key, ok = strings.CutPrefix(attr, settingPrefix)
	if ok && !metadata.IsSetting(key) {
		return "", true, syscall.ENOTSUP
	}
	return key, ok, 0
}

func (d *namespaceDir) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	key, ok, errno := settingOf(attr)
	if !ok {
		return d.labelXattrs.Getxattr(ctx, attr, dest)
	}
	if errno == 0 {
		errno = d.fsys.enter(&d.ns)
	}
	if errno != 0 {
		return 0, errno
	}
	value, err := d.fsys.db.Namespaces().Setting(d.ns.name, key)
	if err != nil {
		return 0, toErrno("getxattr ns/"+d.ns.name+" "+attr, err)
	}
	return getValue(value, dest)
}

// Setxattr of a setting: an empty value removes it, as for labels.
func (d *namespaceDir) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	key, ok, errno := settingOf(attr)
	if !ok {
		return d.labelXattrs.Setxattr(ctx, attr, data, flags)
	}
	return d.setSetting(ctx, attr, key, string(data), errno)
}

func (d *namespaceDir) Removexattr(ctx context.Context, attr string) syscall.Errno {
	key, ok, errno := settingOf(attr)
	if !ok {
		return d.labelXattrs.Removexattr(ctx, attr)
	}
	if errno == 0 {
		errno = d.fsys.enter(&d.ns)
	}
	if errno != 0 {
		return errno
	}
	// Removing what is not set is ENODATA, as for a label.
	if _, err := d.fsys.db.Namespaces().Setting(d.ns.name, key); err != nil {
		return toErrno("removexattr ns/"+d.ns.name+" "+attr, err)
	}
	return d.setSetting(ctx, attr, key, "", 0)
}

func (d *namespaceDir) setSetting(ctx context.Context, attr, key, value string, errno syscall.Errno) syscall.Errno {
	if errno == 0 {
		errno = d.fsys.enter(&d.ns)
	}
	if errno != 0 {
		return errno
	}
	err := d.fsys.db.Namespaces().SetSetting(d.ns.name, d.fsys.callerOf(ctx), key, value)
	if err != nil {
		return toErrno("setxattr ns/"+d.ns.name+" "+attr, err)
	}
	return 0
}
