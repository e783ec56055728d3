package metadata

import (
	"strconv"
	"strings"

	"github.com/pkg/errors"
	bolt "go.etcd.io/bbolt"
)

// A namespace belongs to a user: the uid and gid of the process that made
// it and the mode its mkdir asked for. Everything inside the namespace
// follows them (fs/ derives the modes of images/, the image files and the
// blobs from Mode); the kernel enforces them when the mount lets other
// users in. Namespaces of a store written before owners existed have no
// uid, gid or mode keys and read as LegacyOwner.

// Owner is who a namespace belongs to and its permission bits.
type Owner struct {
	UID, GID uint32
	Mode     uint32 // permission bits only (0o777)
}

// LegacyOwner is the owner of a namespace recorded without one: made by
// an nsfs from before owners, or made by the store itself (default).
var LegacyOwner = Owner{UID: 0, GID: 0, Mode: 0o755}

// permBits are the bits of a mode a namespace keeps: setuid, setgid and
// sticky mean nothing for what it holds.
const permBits = 0o777

// Caller is the user a request comes from (the FUSE request's uid and
// gid). Root (uid 0) may do everything.
type Caller struct{ UID, GID uint32 }

// Root is the caller of the store's own work and of root's requests.
var Root = Caller{}

func (c Caller) isRoot() bool { return c.UID == 0 }

// OwnerChange is a chmod, chown or chgrp: nil fields stay as they are.
type OwnerChange struct {
	UID, GID, Mode *uint32
}

// Usage is what a namespace holds, kept in the store as holds come and go
// (hold, drop), never recomputed by a walk.
type Usage struct {
	Held int64 // bytes of the blobs it holds, each counted once
	Only int64 // bytes of the blobs no other namespace holds: what deleting it frees
}

// NoQuota is Namespace.Quota when none is set.
const NoQuota int64 = -1

// The settings root keeps on a namespace (its trusted.nsfs.<key> xattrs).
const (
	// SettingQuota bounds the bytes the namespace holds (decimal bytes;
	// K, M, G, T suffixes are powers of 1024).
	SettingQuota = "quota"
	// SettingSharing overrides the mount's content-sharing policy for
	// the namespace: "shared" or "isolated".
	SettingSharing = "sharing"
	// SettingHeld and SettingOnly show the usage counters (read-only):
	// Usage.Held and Usage.Only in decimal bytes.
	SettingHeld = "held"
	SettingOnly = "only"
)

// Settings are the names of every setting, sorted.
var Settings = []string{SettingHeld, SettingOnly, SettingQuota, SettingSharing}

var (
	keyUID     = []byte("uid")
	keyGID     = []byte("gid")
	keyMode    = []byte("mode")
	keyQuota   = []byte("quota")
	keySharing = []byte("sharing")
	keyHeld    = []byte("held")
	keyOnly    = []byte("only")
)

// readOwner reads a namespace's owner; a namespace recorded without one
// is LegacyOwner's.
func readOwner(nsb *bolt.Bucket) Owner {
	if nsb.Get(keyMode) == nil {
		return LegacyOwner
	}
	return Owner{
		UID:  uint32(getUint64(nsb, keyUID)),
		GID:  uint32(getUint64(nsb, keyGID)),
		Mode: uint32(getUint64(nsb, keyMode)) & permBits,
	}
}

func writeOwner(nsb *bolt.Bucket, o Owner) error {
	if err := putUint64(nsb, keyUID, uint64(o.UID)); err != nil {
		return err
	}
	if err := putUint64(nsb, keyGID, uint64(o.GID)); err != nil {
		return err
	}
	return putUint64(nsb, keyMode, uint64(o.Mode&permBits))
}

// readQuota is the namespace's quota, or NoQuota.
func readQuota(nsb *bolt.Bucket) int64 {
	if nsb.Get(keyQuota) == nil {
		return NoQuota
	}
	return getInt64(nsb, keyQuota)
}

// readSharing is the namespace's own sharing policy, "" when it follows
// the mount's.
func readSharing(nsb *bolt.Bucket) Sharing { return Sharing(nsb.Get(keySharing)) }

// sharingOf is the policy in force for namespace nsb (nil: the mount's).
func (db *DB) sharingOf(nsb *bolt.Bucket) Sharing {
	if nsb != nil {
		if s := readSharing(nsb); s != "" {
			return s
		}
	}
	return db.opts.Sharing
}

func readUsage(nsb *bolt.Bucket) Usage {
	return Usage{Held: getInt64(nsb, keyHeld), Only: getInt64(nsb, keyOnly)}
}

// CreateOwned is Create for a namespace that belongs to owner (mkdir by
// a user: its uid, gid and mode after umask).
func (db namespaceStore) CreateOwned(name string, owner Owner, labels map[string]string) (Namespace, error) {
	return db.create(name, &owner, labels)
}

// SetOwner applies a chmod, chown or chgrp of namespace name by caller,
// as Linux allows them: the mode and the group by the owner or root, the
// owner by root only (ErrNotPermitted otherwise). It returns the
// namespace as it now is.
func (db namespaceStore) SetOwner(name string, by Caller, change OwnerChange) (Namespace, error) {
	var ns Namespace
	err := db.batch(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, name)
		if err != nil {
			return err
		}
		o := readOwner(nsb)
		if !by.isRoot() {
			if by.UID != o.UID {
				return errors.WithMessagef(ErrNotPermitted, "namespace %q belongs to uid %d: uid %d may not change its mode or owner", name, o.UID, by.UID)
			}
			if change.UID != nil && *change.UID != o.UID {
				return errors.WithMessagef(ErrNotPermitted, "namespace %q: only root may give it to another user", name)
			}
		}
		if change.UID != nil {
			o.UID = *change.UID
		}
		if change.GID != nil {
			o.GID = *change.GID
		}
		if change.Mode != nil {
			o.Mode = *change.Mode & permBits
		}
		if err := writeOwner(nsb, o); err != nil {
			return err
		}
		ns = readNamespace(name, nsb, false)
		return nil
	})
	if err != nil {
		return Namespace{}, err
	}
	return ns, nil
}

// Setting reads setting key of namespace name as its xattr shows it:
// ErrNoLabel when it is not set.
func (db namespaceStore) Setting(name, key string) (string, error) {
	var value string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, name)
		if err != nil {
			return err
		}
		switch key {
		case SettingQuota:
			if q := readQuota(nsb); q != NoQuota {
				value = strconv.FormatInt(q, 10)
			}
		case SettingSharing:
			value = string(readSharing(nsb))
		case SettingHeld:
			value = strconv.FormatInt(readUsage(nsb).Held, 10)
		case SettingOnly:
			value = strconv.FormatInt(readUsage(nsb).Only, 10)
		default:
			return unknownSetting(name, key)
		}
		if value == "" {
			return errors.WithMessagef(ErrNoLabel, "namespace %q has no %s set", name, key)
		}
		return nil
	})
	return value, err
}

// SetSetting sets (value "": removes) setting key of namespace name; root
// only. A quota below what the namespace already holds is kept: it
// refuses new holds and deletes nothing.
func (db namespaceStore) SetSetting(name string, by Caller, key, value string) error {
	if !by.isRoot() {
		return errors.WithMessagef(ErrNotPermitted, "namespace %q: only root may set its %s", name, key)
	}
	var put func(nsb *bolt.Bucket) error
	switch key {
	case SettingQuota:
		if value == "" {
			put = func(nsb *bolt.Bucket) error { return nsb.Delete(keyQuota) }
			break
		}
		q, err := ParseSize(value)
		if err != nil {
			return errors.WithMessagef(ErrInvalidArgument, "namespace %q: quota %q: %v", name, shorten(value), err)
		}
		put = func(nsb *bolt.Bucket) error { return putInt64(nsb, keyQuota, q) }
	case SettingSharing:
		switch Sharing(value) {
		case "":
			put = func(nsb *bolt.Bucket) error { return nsb.Delete(keySharing) }
		case SharingShared, SharingIsolated:
			put = func(nsb *bolt.Bucket) error { return nsb.Put(keySharing, []byte(value)) }
		default:
			return errors.WithMessagef(ErrInvalidArgument, "namespace %q: sharing %q: must be %q or %q", name, shorten(value), SharingShared, SharingIsolated)
		}
	case SettingHeld, SettingOnly:
		return errors.WithMessagef(ErrReadOnly, "namespace %q: %s is counted by the store and cannot be set", name, key)
	default:
		return unknownSetting(name, key)
	}
	return db.batch(func(tx *bolt.Tx) error {
		nsb, err := namespaceBucket(tx, name)
		if err != nil {
			return err
		}
		if err := put(nsb); err != nil {
			return err
		}
		return db.claimNowVisible(tx, name, nsb)
	})
}

func unknownSetting(name, key string) error {
	return errors.WithMessagef(ErrInvalidArgument, "namespace %q: no setting %q (there are %s)", name, shorten(key), strings.Join(Settings, ", "))
}

// IsSetting reports whether key names a setting.
func IsSetting(key string) bool {
	for _, k := range Settings {
		if k == key {
			return true
		}
	}
	return false
}

// ParseSize reads a size in bytes: decimal digits, optionally followed by
// K, M, G or T (powers of 1024; "KiB", "MB" and the like are read the same).
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	upper := strings.ToUpper(t)
	for _, suffix := range []string{"IB", "B"} {
		if strings.HasSuffix(upper, suffix) && len(upper) > len(suffix) {
			upper = strings.TrimSuffix(upper, suffix)
			break
		}
	}
	shift := 0
	if n := len(upper); n > 0 {
		switch upper[n-1] {
		case 'K':
			shift = 10
		case 'M':
			shift = 20
		case 'G':
			shift = 30
		case 'T':
			shift = 40
		}
		if shift > 0 {
			upper = upper[:n-1]
		}
	}
	n, err := strconv.ParseInt(upper, 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("not a size in bytes (digits, then K, M, G or T)")
	}
	if n > (1<<63-1)>>shift {
		return 0, errors.New("too large")
	}
	return n << shift, nil
}
