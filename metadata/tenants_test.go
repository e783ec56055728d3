package metadata

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// copyDir copies a store kept in testdata, so that opening it (which
// writes) leaves the repository alone.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.Walk(from, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), data, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// testdata/store-61f24d1 was written by nsfs at commit 61f24d1, before
// owners, settings and usage counters: namespaces default (empty), old
// (labelled team=infra; image docker.io/library/app:v1: config 37 bytes,
// layer 28, manifest 399) and other (holds the same layer, written under
// isolated sharing).
func TestStoreFromBeforeOwnersReadsAsRoot0755(t *testing.T) {
	root := copyDir(t, "testdata/store-61f24d1")
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatalf("open the old store: %v", err)
	}
	list, err := db.Namespaces().List()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Usage{
		"default": {},
		"old":     {Held: 37 + 28 + 399, Only: 37 + 399},
		"other":   {Held: 28},
	}
	if len(list) != len(want) {
		t.Fatalf("namespaces %v, want %d", list, len(want))
	}
	for _, ns := range list {
		if ns.Owner != LegacyOwner || ns.Owner != (Owner{0, 0, 0o755}) {
			t.Errorf("namespace %s: owner %+v, want root:root 0755", ns.Name, ns.Owner)
		}
		if ns.Quota != NoQuota || ns.Sharing != "" {
			t.Errorf("namespace %s: quota %d sharing %q, want none", ns.Name, ns.Quota, ns.Sharing)
		}
		if ns.Usage != want[ns.Name] {
			t.Errorf("namespace %s: usage %+v, want %+v", ns.Name, ns.Usage, want[ns.Name])
		}
	}
	labels, err := db.Labels().All(Object{Namespace: "old"})
	if err != nil || labels["team"] != "infra" {
		t.Errorf("labels of old = %v, %v", labels, err)
	}
	if _, err := db.Images().Stat("old", "docker.io/library/app:v1"); err != nil {
		t.Errorf("image of the old store: %v", err)
	}
	checkInvariants(t, db)

	// Owners and counters then work on it as on a new store, and stay.
	mode := uint32(0o700)
	if _, err := db.Namespaces().SetOwner("other", Root, OwnerChange{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	if err := db.Images().Delete("old", "docker.io/library/app:v1"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(root, Options{})
	if err != nil {
		t.Fatalf("open again: %v", err)
	}
	defer db.Close()
	old, _ := db.Namespaces().Stat("old")
	other, _ := db.Namespaces().Stat("other")
	if old.Usage != (Usage{}) || other.Usage != (Usage{Held: 28, Only: 28}) {
		t.Errorf("after the image went: old %+v, other %+v", old.Usage, other.Usage)
	}
	if other.Owner != (Owner{0, 0, 0o700}) || old.Owner != LegacyOwner {
		t.Errorf("after chmod 0700 other: other %+v, old %+v", other.Owner, old.Owner)
	}
	checkInvariants(t, db)
}

func TestOwnerOfNewNamespaces(t *testing.T) {
	db := openTestDB(t, Options{})
	ns, err := db.Namespaces().CreateOwned("alice", Owner{UID: 1000, GID: 1000, Mode: 0o4700}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ns.Owner != (Owner{1000, 1000, 0o700}) {
		t.Errorf("CreateOwned returned owner %+v", ns.Owner)
	}
	got, _ := db.Namespaces().Stat("alice")
	if got.Owner != (Owner{1000, 1000, 0o700}) || got.Quota != NoQuota {
		t.Errorf("Stat: owner %+v quota %d", got.Owner, got.Quota)
	}
	plain, _ := db.Namespaces().Create("plain", nil)
	if plain.Owner != LegacyOwner {
		t.Errorf("Create: owner %+v, want root 0755", plain.Owner)
	}
}

func TestSetOwnerRules(t *testing.T) {
	db := openTestDB(t, Options{})
	if _, err := db.Namespaces().CreateOwned("alice", Owner{UID: 1000, GID: 1000, Mode: 0o755}, nil); err != nil {
		t.Fatal(err)
	}
	u := func(v uint32) *uint32 { return &v }
	alice, bob := Caller{1000, 1000}, Caller{1001, 1001}
	before := dump(t, db)
	for _, c := range []struct {
		what   string
		by     Caller
		change OwnerChange
	}{
		{"chmod by another user", bob, OwnerChange{Mode: u(0o777)}},
		{"chown by another user", bob, OwnerChange{UID: u(1001)}},
		{"chown by the owner", alice, OwnerChange{UID: u(1001)}},
		{"chgrp by another user", bob, OwnerChange{GID: u(1001)}},
	} {
		_, err := db.Namespaces().SetOwner("alice", c.by, c.change)
		wantKind(t, c.what, err, func(err error) bool { return errors.Is(err, ErrNotPermitted) }, "ErrNotPermitted")
	}
	if after := dump(t, db); after != before {
		t.Errorf("a refused change changed the store")
	}
	if ns, err := db.Namespaces().SetOwner("alice", alice, OwnerChange{Mode: u(0o700), GID: u(50), UID: u(1000)}); err != nil || ns.Owner != (Owner{1000, 50, 0o700}) {
		t.Errorf("chmod+chgrp by the owner: %+v, %v", ns.Owner, err)
	}
	if ns, err := db.Namespaces().SetOwner("alice", Root, OwnerChange{UID: u(1001), GID: u(1001)}); err != nil || ns.Owner != (Owner{1001, 1001, 0o700}) {
		t.Errorf("chown by root: %+v, %v", ns.Owner, err)
	}
	_, err := db.Namespaces().SetOwner("nope", Root, OwnerChange{Mode: u(0o700)})
	wantKind(t, "chmod of a missing namespace", err, IsNotFound, "ErrNotFound")
}

func TestSettings(t *testing.T) {
	db := openTestDB(t, Options{})
	nss := db.Namespaces()
	if _, err := nss.Setting("default", SettingQuota); !errors.Is(err, ErrNoLabel) {
		t.Errorf("unset quota: %v, want ErrNoLabel", err)
	}
	if err := nss.SetSetting("default", Caller{UID: 1000}, SettingQuota, "1"); !errors.Is(err, ErrNotPermitted) {
		t.Errorf("quota set by a user: %v, want ErrNotPermitted", err)
	}
	for _, bad := range []struct{ key, value string }{
		{SettingQuota, "-1"}, {SettingQuota, "1X"}, {SettingQuota, "99999999999T"},
		{SettingSharing, "open"}, {"colour", "red"},
	} {
		if err := nss.SetSetting("default", Root, bad.key, bad.value); !IsInvalidArgument(err) {
			t.Errorf("set %s=%q: %v, want ErrInvalidArgument", bad.key, bad.value, err)
		}
	}
	if err := nss.SetSetting("default", Root, SettingQuota, "10M"); err != nil {
		t.Fatal(err)
	}
	if v, err := nss.Setting("default", SettingQuota); err != nil || v != "10485760" {
		t.Errorf("quota = %q, %v", v, err)
	}
	if err := nss.SetSetting("default", Root, SettingSharing, "isolated"); err != nil {
		t.Fatal(err)
	}
	if ns, _ := nss.Stat("default"); ns.Quota != 10<<20 || ns.Sharing != SharingIsolated {
		t.Errorf("Stat: quota %d sharing %q", ns.Quota, ns.Sharing)
	}
	mustWriteBlob(t, db, "default", []byte("12345"))
	if v, err := nss.Setting("default", SettingHeld); err != nil || v != "5" {
		t.Errorf("held = %q, %v", v, err)
	}
	if v, err := nss.Setting("default", SettingOnly); err != nil || v != "5" {
		t.Errorf("only = %q, %v", v, err)
	}
	if err := nss.SetSetting("default", Root, SettingHeld, "0"); !errors.Is(err, ErrReadOnly) {
		t.Errorf("set held: %v, want ErrReadOnly", err)
	}
	for _, key := range []string{SettingQuota, SettingSharing} {
		if err := nss.SetSetting("default", Root, key, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := nss.Setting("default", key); !errors.Is(err, ErrNoLabel) {
			t.Errorf("removed %s: %v", key, err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "512": 512, "1K": 1024, "2k": 2048, "3M": 3 << 20, "1G": 1 << 30, "1T": 1 << 40, "5MiB": 5 << 20, "7MB": 7 << 20, "9B": 9} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "K", "-1", "1.5M", "1P", "0x10"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) succeeded", in)
		}
	}
}

// The quota bounds what a namespace holds, whichever way a hold comes: a
// blob written, an image that claims blobs others hold.
func TestQuotaRefusesEveryNewHold(t *testing.T) {
	db := openTestDB(t, Options{})
	nss := db.Namespaces()
	for _, n := range []string{"a", "b"} {
		if _, err := nss.Create(n, nil); err != nil {
			t.Fatal(err)
		}
	}
	img := seedImage(t, db, "a", "app:v1")
	if _, err := db.Images().Put(ImageWrite{Namespace: "a", Ref: "app:v1", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	a, _ := nss.Stat("a") // config, layer and manifest, held by a alone
	if a.Usage.Held == 0 || a.Usage.Held != a.Usage.Only {
		t.Fatalf("usage of a: %+v", a.Usage)
	}
	manifest := img.manifest

	// b may hold less than the image: claiming it fails, keeps nothing.
	if err := nss.SetSetting("b", Root, SettingQuota, "10"); err != nil {
		t.Fatal(err)
	}
	before := dump(t, db)
	_, err := db.Images().Put(ImageWrite{Namespace: "b", Ref: "app:v1", Manifest: manifest})
	wantKind(t, "claiming over quota", err, func(err error) bool { return errors.Is(err, ErrQuota) }, "ErrQuota")
	w, err := db.Content().Writer("b", 0, digest.FromString("eleven bytes"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.Write([]byte("eleven bytes"))
	wantKind(t, "the write that passes the quota", err, func(err error) bool { return errors.Is(err, ErrQuota) }, "ErrQuota")
	wantKind(t, "writing over quota", w.Commit(), func(err error) bool { return errors.Is(err, ErrQuota) }, "ErrQuota")
	if after := dump(t, db); after != before {
		t.Errorf("a write refused for the quota changed the store:\n%s\nwas\n%s", after, before)
	}
	mustWriteBlob(t, db, "b", []byte("ten bytes!")) // exactly the quota
	// Raised, the claim passes; a and b now share the image's blobs.
	if err := nss.SetSetting("b", Root, SettingQuota, "1M"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Images().Put(ImageWrite{Namespace: "b", Ref: "app:v1", Manifest: manifest}); err != nil {
		t.Fatal(err)
	}
	a, _ = nss.Stat("a")
	b, _ := nss.Stat("b")
	if a.Usage.Only != 0 || b.Usage.Held != a.Usage.Held+10 || b.Usage.Only != 10 {
		t.Errorf("after sharing: a %+v, b %+v", a.Usage, b.Usage)
	}
	// Lowered below the use, the quota deletes nothing and refuses more.
	if err := nss.SetSetting("b", Root, SettingQuota, "1"); err != nil {
		t.Fatal(err)
	}
	if b2, _ := nss.Stat("b"); b2.Usage != b.Usage {
		t.Errorf("lowering the quota changed the usage: %+v", b2.Usage)
	}
	w, _ = db.Content().Writer("b", 0, digest.FromString("x"))
	_, _ = w.Write([]byte("x"))
	wantKind(t, "writing over a lowered quota", w.Commit(), func(err error) bool { return errors.Is(err, ErrQuota) }, "ErrQuota")
	// Dropping the image from a gives b its blobs alone.
	if err := db.Images().Delete("a", "app:v1"); err != nil {
		t.Fatal(err)
	}
	a, _ = nss.Stat("a")
	b, _ = nss.Stat("b")
	if a.Usage != (Usage{}) || b.Usage.Only != b.Usage.Held {
		t.Errorf("after a let go: a %+v, b %+v", a.Usage, b.Usage)
	}
	checkInvariants(t, db)
}

// A namespace's own sharing policy overrides the mount's, both ways.
func TestSharingPerNamespace(t *testing.T) {
	db := openTestDB(t, Options{Sharing: SharingShared})
	nss := db.Namespaces()
	for _, n := range []string{"a", "b"} {
		if _, err := nss.Create(n, nil); err != nil {
			t.Fatal(err)
		}
	}
	blob := mustWriteBlob(t, db, "a", []byte("a's secret"))
	if _, err := db.Content().Stat("b", blob.Digest); err != nil {
		t.Fatalf("shared: b cannot see a's blob: %v", err)
	}
	if err := nss.SetSetting("b", Root, SettingSharing, string(SharingIsolated)); err != nil {
		t.Fatal(err)
	}
	_, errHeld := db.Content().Stat("b", blob.Digest)
	_, errAbsent := db.Content().Stat("b", digest.FromString("nobody has this"))
	if !IsNotFound(errHeld) || !IsNotFound(errAbsent) {
		t.Errorf("isolated b: a held blob %v, an absent one %v; want both ErrNotFound", errHeld, errAbsent)
	}
	// b must send the bytes, and may.
	mustWriteBlob(t, db, "b", []byte("a's secret"))

	iso := openTestDB(t, Options{Sharing: SharingIsolated})
	if _, err := iso.Namespaces().Create("c", nil); err != nil {
		t.Fatal(err)
	}
	other := mustWriteBlob(t, iso, "default", []byte("default's"))
	if _, err := iso.Content().Stat("c", other.Digest); !IsNotFound(err) {
		t.Errorf("isolated mount: c sees default's blob: %v", err)
	}
	if err := iso.Namespaces().SetSetting("c", Root, SettingSharing, string(SharingShared)); err != nil {
		t.Fatal(err)
	}
	if _, err := iso.Content().Stat("c", other.Digest); err != nil {
		t.Errorf("c set to shared cannot see default's blob: %v", err)
	}
}

// fsck finds a usage counter that disagrees with the holds.
func TestCheckFindsStaleUsage(t *testing.T) {
	db := openTestDB(t, Options{})
	mustWriteBlob(t, db, "default", []byte("twelve bytes"))
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		return putInt64(namespacesBucket(tx).Bucket([]byte("default")), keyHeld, 5)
	}); err != nil {
		t.Fatal(err)
	}
	rep, err := db.Check(CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range rep.Problems {
		found = found || strings.Contains(p.String(), "usage counters say 5 bytes held, 12 only its own, but its holds add up to 12 and 12")
	}
	if !found {
		t.Errorf("fsck did not report the stale counter: %v", rep.Problems)
	}
}

// fsck --repair recounts stale counters and keeps owners and settings.
func TestRepairRecountsUsageKeepsOwners(t *testing.T) {
	root := t.TempDir()
	db, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Namespaces().CreateOwned("alice", Owner{UID: 1000, GID: 1000, Mode: 0o700}, nil); err != nil {
		t.Fatal(err)
	}
	if err := db.Namespaces().SetSetting("alice", Root, SettingQuota, "1M"); err != nil {
		t.Fatal(err)
	}
	mustWriteBlob(t, db, "alice", []byte("twelve bytes"))
	if err := db.bolt.Update(func(tx *bolt.Tx) error {
		return putInt64(namespacesBucket(tx).Bucket([]byte("alice")), keyOnly, 99)
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	rep, err := Repair(root, CheckOptions{})
	if err != nil || len(rep.Problems) != 1 {
		t.Fatalf("Repair: %v, problems %v; want the one stale counter", err, rep.Problems)
	}
	db, err = Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ns, _ := db.Namespaces().Stat("alice")
	if ns.Usage != (Usage{Held: 12, Only: 12}) || ns.Owner != (Owner{1000, 1000, 0o700}) || ns.Quota != 1<<20 {
		t.Errorf("after repair: usage %+v owner %+v quota %d", ns.Usage, ns.Owner, ns.Quota)
	}
	checkInvariants(t, db)
}

// BenchmarkStatBlobIsolatedBySetting is BenchmarkStatBlobIsolated for a
// namespace isolated by its own setting on a shared mount: the cost of a
// stat is the same for a blob nobody holds and for one others hold.
//
//	go test -run XXX -bench StatBlobIsolatedBySetting ./metadata/
func BenchmarkStatBlobIsolatedBySetting(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "store"), Options{Sharing: SharingShared})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Namespaces().Create("tenant", nil); err != nil {
		b.Fatal(err)
	}
	if err := db.Namespaces().SetSetting("tenant", Root, SettingSharing, string(SharingIsolated)); err != nil {
		b.Fatal(err)
	}
	held := map[int]digest.Digest{}
	for _, holders := range []int{1, 300} {
		data := []byte(fmt.Sprintf("held by %d", holders))
		for i := 0; i < holders; i++ {
			ns := fmt.Sprintf("h%d-%d", holders, i)
			if _, err := db.Namespaces().Create(ns, nil); err != nil {
				b.Fatal(err)
			}
			w, err := db.Content().Writer(ns, 0, digest.FromBytes(data))
			if IsExists(err) {
				continue // shared: the others see it already
			}
			if err != nil {
				b.Fatal(err)
			}
			_, _ = w.Write(data)
			if err := w.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		held[holders] = digest.FromBytes(data)
	}
	held[0] = digest.FromString("nobody holds this")
	for _, holders := range []int{0, 1, 300} {
		b.Run(fmt.Sprintf("holders=%d", holders), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := db.Content().Stat("tenant", held[holders]); !IsNotFound(err) {
					b.Fatal(err)
				}
			}
		})
	}
}

// nsfs fsck (read-only) of a store from before owners finds nothing to
// report: the counters it lacks are counted at its next writable open.
func TestCheckStoreFromBeforeOwners(t *testing.T) {
	root := copyDir(t, "testdata/store-61f24d1")
	db, err := Open(root, Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rep, err := db.Check(CheckOptions{VerifyBlobs: true})
	if err != nil || len(rep.Problems) != 0 {
		t.Errorf("fsck of the old store: %v, %v", rep.Problems, err)
	}
	ns, err := db.Namespaces().Stat("old")
	if err != nil || ns.Owner != LegacyOwner || ns.Quota != NoQuota {
		t.Errorf("old, read-only: %+v, %v", ns, err)
	}
}
