package blob

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"

	"github.com/sluice-data/sluice/internal/template"
)

var _ Lister = (*MemStore)(nil)

// MemStore keeps objects in memory. It refuses the keys a FileStore or an
// S3Store refuses (template.CheckKey), so what works against it works
// against them. Config unit tests (processor test) write to it: sinks
// encode their objects for real and nothing leaves the process.
type MemStore struct {
	loc string

	mu   sync.Mutex
	objs map[string][]byte
}

// NewMemStore returns an empty store; location is only for logs.
func NewMemStore(location string) *MemStore {
	return &MemStore{loc: location, objs: map[string][]byte{}}
}

// Location returns the location given to NewMemStore.
func (s *MemStore) Location() string { return s.loc }

// Put runs body into a buffer and stores it whole: a failed body leaves
// the key as it was.
func (s *MemStore) Put(_ context.Context, key string, body Body) error {
	if err := template.CheckKey(key); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	var b bytes.Buffer
	if err := body(&b); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	s.mu.Lock()
	s.objs[key] = b.Bytes()
	s.mu.Unlock()
	return nil
}

// List returns the keys under prefix, sorted, skipping hidden objects
// (a path element starting with ".") as FileStore does.
func (s *MemStore) List(_ context.Context, prefix string) ([]string, error) {
	if err := template.CheckPrefix(prefix); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.objs {
		if !strings.HasPrefix(k, prefix) || hidden(k) {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

func hidden(key string) bool {
	for _, el := range strings.Split(key, "/") {
		if strings.HasPrefix(el, ".") {
			return true
		}
	}
	return false
}

// Get returns a copy of an object's content; a missing key is
// fs.ErrNotExist.
func (s *MemStore) Get(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.objs[key]
	if !ok {
		return nil, fmt.Errorf("get %s: %w", key, fs.ErrNotExist)
	}
	return bytes.Clone(b), nil
}
