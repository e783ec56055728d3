package metadata

import (
	"strings"
	"testing"
)

func TestNewStoreHasDefaultNamespace(t *testing.T) {
	db := openTestDB(t, Options{})
	list, err := db.Namespaces().List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "default" {
		t.Fatalf("namespaces of a new store: %+v, want only default", list)
	}
	if list[0].ID == 0 || list[0].CreatedAt.IsZero() {
		t.Fatalf("default namespace has no ID or creation time: %+v", list[0])
	}
	if db.Sharing() != SharingShared {
		t.Fatalf("default sharing %q, want shared", db.Sharing())
	}
}

func TestNamespaceCRUD(t *testing.T) {
	db := openTestDB(t, Options{})
	foo, err := db.Namespaces().Create("foo", map[string]string{"team": "a", "empty": ""})
	if err != nil {
		t.Fatal(err)
	}
	if foo.Labels["team"] != "a" || len(foo.Labels) != 1 {
		t.Fatalf("labels %v: want team=a only (an empty value is no label)", foo.Labels)
	}
	_, err = db.Namespaces().Create("foo", nil)
	wantKind(t, "create foo twice", err, IsExists, "ErrExists")
	if err.Error() != `namespace "foo" already exists: already exists` {
		t.Fatalf("message %q", err)
	}
	bar, err := db.Namespaces().Create("Bar", nil)
	if err != nil {
		t.Fatal(err)
	}
	if bar.ID == foo.ID {
		t.Fatalf("two namespaces share ID %d", bar.ID)
	}
	got, err := db.GetNamespace("foo")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != foo.ID || got.Labels["team"] != "a" || !got.CreatedAt.Equal(foo.CreatedAt) {
		t.Fatalf("GetNamespace(foo) = %+v, want %+v", got, foo)
	}
	_, err = db.GetNamespace("FOO")
	wantKind(t, "names are case-sensitive: get FOO", err, IsNotFound, "ErrNotFound")

	list, err := db.Namespaces().List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ns := range list {
		names = append(names, ns.Name)
	}
	if strings.Join(names, ",") != "Bar,default,foo" {
		t.Fatalf("NamespaceStore.List = %v, want sorted Bar,default,foo", names)
	}

	deleted, err := db.Namespaces().Delete("foo")
	if err != nil {
		t.Fatal(err)
	}
	if deleted.Name != "foo" || deleted.ID != foo.ID {
		t.Errorf("NamespaceStore.Delete returned %q with ID %d, want foo with ID %d", deleted.Name, deleted.ID, foo.ID)
	}
	_, err = db.Namespaces().Delete("foo")
	wantKind(t, "delete foo twice", err, IsNotFound, "ErrNotFound")
	again, err := db.Namespaces().Create("foo", nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == foo.ID || again.ID == bar.ID {
		t.Fatalf("re-created foo got a reused ID %d", again.ID)
	}
	if len(again.Labels) != 0 {
		t.Fatalf("re-created foo inherited labels %v", again.Labels)
	}
}

func TestValidateNamespace(t *testing.T) {
	for _, tc := range []struct {
		name string
		is   func(error) bool // nil: valid
	}{
		{"default", nil},
		{"a", nil},
		{"A1", nil},
		{"a.b-c_d", nil},
		{"k8s.io", nil},
		{strings.Repeat("a", 76), nil},
		{strings.Repeat("a", 77), IsInvalidArgument},
		{strings.Repeat("a", 255), IsInvalidArgument},
		{strings.Repeat("a", 256), IsNameTooLong},
		{"", IsInvalidArgument},
		{"-a", IsInvalidArgument},
		{"a-", IsInvalidArgument},
		{"a--b", IsInvalidArgument},
		{"a..b", IsInvalidArgument},
		{".a", IsInvalidArgument},
		{"a/b", IsInvalidArgument},
		{"a b", IsInvalidArgument},
		{"é", IsInvalidArgument},
		{"a\x00", IsInvalidArgument},
	} {
		err := ValidateNamespace(tc.name)
		switch {
		case tc.is == nil && err != nil:
			t.Errorf("ValidateNamespace(%q) = %v, want valid", tc.name, err)
		case tc.is != nil && (err == nil || !tc.is(err)):
			t.Errorf("ValidateNamespace(%q) = %v, want the other kind of error", tc.name, err)
		}
	}
	db := openTestDB(t, Options{})
	_, err := db.Namespaces().Create("a--b", nil)
	wantKind(t, "create a--b", err, IsInvalidArgument, "ErrInvalidArgument")
	if !strings.Contains(err.Error(), `"a--b"`) {
		t.Fatalf("message %q does not name the namespace", err)
	}
	_, err = db.Namespaces().Create("ok", map[string]string{"": "v"})
	wantKind(t, "create with an empty label key", err, IsInvalidArgument, "ErrInvalidArgument")
	if _, err := db.GetNamespace("ok"); !IsNotFound(err) {
		t.Fatalf("a refused create left namespace ok behind: %v", err)
	}
}

func TestDeleteNamespaceNotEmpty(t *testing.T) {
	db := openTestDB(t, Options{})
	if _, err := db.Namespaces().Create("foo", nil); err != nil {
		t.Fatal(err)
	}
	blob := mustWriteBlob(t, db, "foo", []byte("some blob"))
	_, err := db.Namespaces().Delete("foo")
	wantKind(t, "delete foo holding a blob", err, IsNotEmpty, "ErrNotEmpty")
	if want := `namespace "foo" must be empty, but it still has blobs: not empty`; err.Error() != want {
		t.Fatalf("message %q, want %q", err, want)
	}

	img := seedImage(t, db, "foo", "x")
	if _, err := db.Images().Put(ImageWrite{Namespace: "foo", Ref: "x", Manifest: img.manifest}); err != nil {
		t.Fatal(err)
	}
	_, err = db.Namespaces().Delete("foo")
	if want := `namespace "foo" must be empty, but it still has images, blobs: not empty`; err == nil || err.Error() != want {
		t.Fatalf("delete foo with an image: %v, want %q", err, want)
	}

	// Empty it the way rm -rf does: images first (dropping their blobs),
	// then what the namespace wrote itself; an explicit directory goes
	// with the namespace.
	if err := db.Images().MakeDir("foo", "docker.io"); err != nil {
		t.Fatal(err)
	}
	if err := db.Images().Delete("foo", "x"); err != nil {
		t.Fatal(err)
	}
	_, err = db.Namespaces().Delete("foo")
	if want := `namespace "foo" must be empty, but it still has blobs: not empty`; err == nil || err.Error() != want {
		t.Fatalf("delete foo with a blob: %v, want %q", err, want)
	}
	if err := db.Content().Delete("foo", blob.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Namespaces().Delete("foo"); err != nil {
		t.Fatalf("delete emptied foo: %v", err)
	}
	if _, err := db.Namespaces().Create("foo", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Images().Lookup("foo", "docker.io"); !IsNotFound(err) {
		t.Fatalf("the directory of the deleted foo came back: %v", err)
	}
	checkInvariants(t, db)
}
