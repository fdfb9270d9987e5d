package objstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// Store writes whole objects. Put must be atomic: a reader sees the old
// object or the new one, never a part; and durable once it returns.
type Store interface {
	Put(ctx context.Context, key string, body []byte) error
	// Location describes where keys go, for logs.
	Location() string
}

// FileStore writes objects as files under a root directory.
type FileStore struct {
	root string
}

// NewFileStore returns a store rooted at dir (created if needed).
func NewFileStore(dir string) (*FileStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &FileStore{root: dir}, nil
}

// Location returns the root directory.
func (s *FileStore) Location() string { return s.root }

// Put writes body to a temporary file in the target directory, syncs it,
// renames it over key and syncs the directory, so the object is complete and
// durable when Put returns.
func (s *FileStore) Put(_ context.Context, key string, body []byte) error {
	path := filepath.Join(s.root, filepath.FromSlash(key))
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, "."+filepath.Base(path)+".tmp-"+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	_, err = f.Write(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("put %s: %w", key, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("put %s: sync dir: %w", key, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("put %s: sync dir: %w", key, err)
	}
	return nil
}
