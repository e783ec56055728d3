package metadata

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/nsfs/nsfs/imagegraph"
	bolt "go.etcd.io/bbolt"
)

// putImages puts manifest under every ref in one transaction through the
// same code as ImageStore.Put (which would take one fsynced commit per ref).
func putImages(t testing.TB, db *DB, ns string, manifest []byte, refs []string) {
	t.Helper()
	first, err := db.Images().Put(ImageWrite{Namespace: ns, Ref: refs[0], Manifest: manifest})
	if err != nil {
		t.Fatal(err)
	}
	pm, err := imagegraph.Parse(manifest)
	if err != nil {
		t.Fatal(err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		for _, ref := range refs[1:] {
			w := ImageWrite{Namespace: ns, Ref: ref, Manifest: manifest}
			if _, err := db.putImage(tx, w, first.Target, pm, nil, &releases{ns: ns}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func entryNames(entries []Entry) string {
	var out []string
	for _, e := range entries {
		n := e.Name
		if e.IsDir {
			n += "/"
		}
		out = append(out, n)
	}
	return strings.Join(out, " ")
}

func TestImageDirs(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "x")
	putImages(t, db, "default", img.manifest, []string{
		"docker.io/library/redis:latest",
		"docker.io/library/redis:7",
		"docker.io/library-x",
		"docker.io/library.y/z",
		"docker.io-mirror",
		"alpine",
	})

	root, err := db.Images().ReadDir("default", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := entryNames(root); got != "alpine docker.io/ docker.io-mirror" {
		t.Fatalf("images/ lists %q", got)
	}
	lib, err := db.Images().ReadDir("default", "docker.io")
	if err != nil {
		t.Fatal(err)
	}
	if got := entryNames(lib); got != "library/ library-x library.y/" {
		t.Fatalf("images/docker.io lists %q", got)
	}
	redis, err := db.Images().ReadDir("default", "docker.io/library")
	if err != nil {
		t.Fatal(err)
	}
	if got := entryNames(redis); got != "redis:7 redis:latest" {
		t.Fatalf("images/docker.io/library lists %q", got)
	}
	e := redis[1]
	if e.Path != "docker.io/library/redis:latest" || e.Image == nil || e.Image.ID == 0 || e.Image.Target.Digest != img.digest || e.Image.UpdatedAt.IsZero() {
		t.Fatalf("listed file %+v %+v", e, e.Image)
	}
	if lib[0].Path != "docker.io/library" || !lib[0].IsDir || lib[0].Image != nil {
		t.Fatalf("listed directory %+v", lib[0])
	}

	for path, want := range map[string]string{
		"":                               "dir",
		"docker.io":                      "dir",
		"docker.io/library":              "dir",
		"docker.io/library/redis:latest": "image",
		"docker.io/lib":                  "ErrNotFound",
		"docker":                         "ErrNotFound",
		"alpine/x":                       "ErrNotDirectory",
		"docker.io/library/redis:7/a/b":  "ErrNotDirectory",
		"a//b":                           "ErrInvalidArgument",
	} {
		e, err := db.Images().Lookup("default", path)
		got := "dir"
		switch {
		case IsNotFound(err):
			got = "ErrNotFound"
		case IsNotDirectory(err):
			got = "ErrNotDirectory"
		case IsInvalidArgument(err):
			got = "ErrInvalidArgument"
		case err != nil:
			got = err.Error()
		case !e.IsDir:
			got = "image"
			// Labels are not read on the lookup path (Entry's doc).
			if e.Image == nil || e.Image.ID == 0 || e.Image.Target.Digest == "" || e.Image.Labels != nil || e.Name != "redis:latest" {
				t.Errorf("lookup %q: want the image without labels, got %+v", path, e)
			}
		}
		if got != want {
			t.Errorf("ImageStore.Lookup(%q) = %s, want %s", path, got, want)
		}
	}
	_, err = db.Images().ReadDir("default", "alpine")
	wantKind(t, "list an image", err, IsNotDirectory, "ErrNotDirectory")
	_, err = db.Images().ReadDir("default", "nope")
	wantKind(t, "list a missing directory", err, IsNotFound, "ErrNotFound")
	_, err = db.Images().ReadDir("nope", "")
	wantKind(t, "list in a missing namespace", err, IsNotFound, "ErrNotFound")

	// Explicit directories.
	if err := db.Images().MakeDir("default", "quay.io"); err != nil {
		t.Fatal(err)
	}
	if err := db.Images().MakeDir("default", "quay.io/a"); err != nil {
		t.Fatal(err)
	}
	if err := db.Images().MakeDir("default", "docker.io/library/empty"); err != nil {
		t.Fatal(err)
	}
	for dir, is := range map[string]func(error) bool{
		"":                               IsExists,
		"quay.io":                        IsExists,
		"docker.io":                      IsExists,
		"docker.io/library/redis:latest": IsExists,
		"x/y":                            IsNotFound,
		"alpine/y":                       IsNotDirectory,
		"a/../b":                         IsInvalidArgument,
	} {
		if err := db.Images().MakeDir("default", dir); err == nil || !is(err) {
			t.Errorf("ImageStore.MakeDir(%q) = %v", dir, err)
		}
	}
	if got, _ := db.Images().ReadDir("default", ""); entryNames(got) != "alpine docker.io/ docker.io-mirror quay.io/" {
		t.Fatalf("images/ lists %q", entryNames(got))
	}
	if got, _ := db.Images().ReadDir("default", "docker.io/library"); entryNames(got) != "empty/ redis:7 redis:latest" {
		t.Fatalf("images/docker.io/library lists %q", entryNames(got))
	}
	for ref, is := range map[string]func(error) bool{
		"quay.io":                          IsIsDirectory,
		"quay.io/a":                        IsIsDirectory,
		"docker.io":                        IsIsDirectory,
		"docker.io/library/redis:latest/x": IsNotDirectory,
	} {
		if _, err := db.Images().Put(ImageWrite{Namespace: "default", Ref: ref, Manifest: img.manifest}); err == nil || !is(err) {
			t.Errorf("ImageStore.Put(%q) = %v", ref, err)
		}
	}
	wantKind(t, "rm of a directory", db.Images().Delete("default", "docker.io"), IsIsDirectory, "ErrIsDirectory")

	for dir, is := range map[string]func(error) bool{
		"":                               IsNotEmpty,
		"quay.io":                        IsNotEmpty,
		"docker.io":                      IsNotEmpty,
		"docker.io/library/redis:latest": IsNotDirectory,
		"nope":                           IsNotFound,
		"alpine/x":                       IsNotDirectory,
	} {
		if err := db.Images().RemoveDir("default", dir); err == nil || !is(err) {
			t.Errorf("ImageStore.RemoveDir(%q) = %v", dir, err)
		}
	}
	if err := db.Images().RemoveDir("default", "quay.io/a"); err != nil {
		t.Fatal(err)
	}
	if err := db.Images().RemoveDir("default", "quay.io"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Images().Lookup("default", "quay.io"); !IsNotFound(err) {
		t.Fatalf("removed directory: %v", err)
	}

	// A directory stays after its last ref and its last subdirectory are
	// gone, until rmdir.
	for _, ref := range []string{"docker.io/library/redis:latest", "docker.io/library/redis:7"} {
		if err := db.Images().Delete("default", ref); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := db.Images().ReadDir("default", "docker.io/library"); entryNames(got) != "empty/" {
		t.Fatalf("images/docker.io/library lists %q", entryNames(got))
	}
	if err := db.Images().RemoveDir("default", "docker.io/library"); !IsNotEmpty(err) {
		t.Fatalf("rmdir of a directory holding an explicit one: %v", err)
	}
	if err := db.Images().RemoveDir("default", "docker.io/library/empty"); err != nil {
		t.Fatal(err)
	}
	if e, err := db.Images().Lookup("default", "docker.io/library"); err != nil || !e.IsDir {
		t.Fatalf("directory whose contents were removed: %+v %v", e, err)
	}
	if err := db.Images().RemoveDir("default", "docker.io/library"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Images().Lookup("default", "docker.io/library"); !IsNotFound(err) {
		t.Fatalf("removed directory: %v", err)
	}
	for _, ref := range []string{"docker.io/library-x", "docker.io/library.y/z", "docker.io-mirror", "alpine"} {
		if err := db.Images().Delete("default", ref); err != nil {
			t.Fatal(err)
		}
	}
	wantKind(t, "rmdir of images/ holding directories", db.Images().RemoveDir("default", ""), IsNotEmpty, "ErrNotEmpty")
	for _, dir := range []string{"docker.io/library.y", "docker.io"} {
		if err := db.Images().RemoveDir("default", dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Images().RemoveDir("default", ""); err != nil {
		t.Fatalf("rmdir of an empty images/: %v", err)
	}
	if e, err := db.Images().Lookup("default", ""); err != nil || !e.IsDir {
		t.Fatalf("images/ after its rmdir: %+v %v", e, err)
	}
	checkInvariants(t, db)
}

func TestReadImageDir10k(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "x")
	var refs []string
	want := map[string]bool{}
	for i := 0; i < 10000; i++ {
		ref := fmt.Sprintf("many/img-%05d", i)
		refs = append(refs, ref)
		want[fmt.Sprintf("img-%05d", i)] = false
	}
	// Deeper refs show as one directory each; siblings of "many" with a
	// common prefix must not leak in.
	for i := 0; i < 100; i++ {
		refs = append(refs, fmt.Sprintf("many/sub%d/a/b", i%7), fmt.Sprintf("many-%d", i), fmt.Sprintf("many.x/%d", i), fmt.Sprintf("man/%d", i))
	}
	for i := 0; i < 7; i++ {
		want[fmt.Sprintf("sub%d", i)] = true
	}
	refs = dedupe(refs)
	putImages(t, db, "default", img.manifest, refs)
	if err := db.Images().MakeDir("default", "many/explicit"); err != nil {
		t.Fatal(err)
	}
	if err := db.Images().MakeDir("default", "many/sub3/b"); err != nil {
		t.Fatal(err)
	}
	want["explicit"] = true

	entries, err := db.Images().ReadDir("default", "many")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(entries), len(want))
	}
	if !sort.SliceIsSorted(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name }) {
		t.Fatal("entries are not sorted by name")
	}
	for _, e := range entries {
		isDir, ok := want[e.Name]
		if !ok || isDir != e.IsDir || e.Path != "many/"+e.Name || (e.Image == nil) != isDir {
			t.Fatalf("unexpected entry %+v", e)
		}
	}
	sub, err := db.Images().ReadDir("default", "many/sub3")
	if err != nil || entryNames(sub) != "a/ b/" {
		t.Fatalf("many/sub3 lists %q, %v", entryNames(sub), err)
	}
}

func dedupe(refs []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range refs {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// Removing the last ref of a directory leaves the directory, so that
// `rm -r images/docker.io` can rmdir each directory after its files.
func TestDirectoryOutlivesItsLastRef(t *testing.T) {
	db := openTestDB(t, Options{})
	img := seedImage(t, db, "default", "x")
	putImages(t, db, "default", img.manifest, []string{"docker.io/library/redis:latest", "quay.io/app:v1"})

	if err := db.Images().Delete("default", "docker.io/library/redis:latest"); err != nil {
		t.Fatal(err)
	}
	if err := db.Images().Rename("default", "quay.io/app:v1", "default", "app:v1", false); err != nil {
		t.Fatal(err)
	}
	root, err := db.Images().ReadDir("default", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := entryNames(root); got != "app:v1 docker.io/ quay.io/" {
		t.Fatalf("images/ lists %q after removing the refs below docker.io and quay.io", got)
	}
	for _, dir := range []string{"docker.io/library", "docker.io", "quay.io"} {
		if err := db.Images().RemoveDir("default", dir); err != nil {
			t.Fatalf("rmdir images/%s: %v", dir, err)
		}
	}
	if root, _ := db.Images().ReadDir("default", ""); entryNames(root) != "app:v1" {
		t.Fatalf("images/ lists %q after the rmdirs", entryNames(root))
	}
}
