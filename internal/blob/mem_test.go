package blob

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"slices"
	"testing"

	"github.com/sluice-data/sluice/internal/template"
)

func TestMemStore(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore("mem:lake")
	for _, k := range []string{"b/2.ndjson", "a/1.ndjson", "a/.tmp/x", "a/.hidden", "c.ndjson"} {
		if err := s.Put(ctx, k, Bytes([]byte("v:"+k))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a/1.ndjson", "b/2.ndjson", "c.ndjson"}; !slices.Equal(got, want) {
		t.Errorf("List(\"\") = %q, want %q", got, want)
	}
	if got, _ = s.List(ctx, "a/"); !slices.Equal(got, []string{"a/1.ndjson"}) {
		t.Errorf("List(a/) = %q", got)
	}
	b, err := s.Get(ctx, "b/2.ndjson")
	if err != nil || string(b) != "v:b/2.ndjson" {
		t.Errorf("Get = %q, %v", b, err)
	}
	b[0] = 'X' // a copy: the store is not changed through it
	if b, _ = s.Get(ctx, "b/2.ndjson"); string(b) != "v:b/2.ndjson" {
		t.Errorf("Get after changing a returned slice = %q", b)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(missing) = %v, want fs.ErrNotExist", err)
	}
	if s.Location() != "mem:lake" {
		t.Errorf("Location = %q", s.Location())
	}
}

func TestMemStoreRefusesUnsafeKeys(t *testing.T) {
	s := NewMemStore("mem:")
	for _, k := range unsafeKeys {
		if err := s.Put(context.Background(), k, Bytes(nil)); !errors.Is(err, template.ErrUnsafeKey) {
			t.Errorf("Put(%q) = %v, want ErrUnsafeKey", k, err)
		}
	}
	if _, err := s.List(context.Background(), "../"); !errors.Is(err, template.ErrUnsafeKey) {
		t.Errorf("List(../) = %v, want ErrUnsafeKey", err)
	}
}

// TestMemStoreFailedBody: a body that fails leaves the key as it was.
func TestMemStoreFailedBody(t *testing.T) {
	ctx := context.Background()
	s := NewMemStore("mem:")
	if err := s.Put(ctx, "k.ndjson", Bytes([]byte("old"))); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := s.Put(ctx, "k.ndjson", func(w io.Writer) error {
		_, _ = w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Put = %v, want boom", err)
	}
	if b, _ := s.Get(ctx, "k.ndjson"); string(b) != "old" {
		t.Errorf("after a failed Put: %q, want old", b)
	}
}
