package blob

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluice-data/sluice/internal/template"
)

// Body writes an object's content to w. A store may call it more than once
// (a retried write); each call must write the same bytes.
type Body func(w io.Writer) error

// Bytes is a Body for content already in memory.
func Bytes(b []byte) Body {
	return func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	}
}

// Store writes whole objects, streamed from a Body so that an object is
// never held in memory whole. Put must be atomic: a reader sees the old
// object or the new one, never a part; and durable once it returns.
type Store interface {
	Put(ctx context.Context, key string, body Body) error
	// Location describes where keys go, for logs.
	Location() string
}

// Lister is a store that can also list and read objects back, which the
// archive source needs.
type Lister interface {
	Store
	// List returns the keys under prefix, sorted, skipping hidden
	// (".name") objects such as a file store's temporary files.
	List(ctx context.Context, prefix string) ([]string, error)
	// Get returns an object's content.
	Get(ctx context.Context, key string) ([]byte, error)
}

// FileStore writes objects as files under a root directory. Every access
// goes through an os.Root, so neither a key nor a symbolic link inside the
// root can reach a file outside it; keys that are not clean relative paths
// (CheckKey) are refused before that.
type FileStore struct {
	dir string

	mu   sync.Mutex
	root *os.Root // opened on first use
}

// NewFileStore returns a store rooted at dir. The directory is created on
// the first write, so a location that never gets an object (an error
// location without errors) leaves nothing behind.
func NewFileStore(dir string) (*FileStore, error) {
	if dir == "" {
		return nil, errors.New("file store: no directory")
	}
	return &FileStore{dir: dir}, nil
}

// Location returns the root directory.
func (s *FileStore) Location() string { return s.dir }

// open returns the root, creating its directory first when create is set.
// Without it, a missing directory is fs.ErrNotExist.
func (s *FileStore) open(create bool) (*os.Root, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.root != nil {
		return s.root, nil
	}
	if create {
		if err := os.MkdirAll(s.dir, 0o755); err != nil {
			return nil, err
		}
	}
	r, err := os.OpenRoot(s.dir)
	if err != nil {
		return nil, err
	}
	sweepTemporary(r)
	s.root = r
	return r, nil
}

// processStart is when this process started, as far as stores are
// concerned: a temporary file last written before it belongs to a process
// that is gone.
var processStart = time.Now()

// tmpName matches Put's temporary files: "." + name + ".tmp-" + 12 hex digits.
var tmpName = regexp.MustCompile(`^\..+\.tmp-[0-9a-f]{12}$`)

// sweepTemporary removes the temporary files that a process killed during
// Put left under root. Readers that take a table location whole (DuckDB's
// read_parquet('lake/**') does not skip hidden files) would fail on them.
// A temporary file written since this process started may be another
// writer's, in flight, and stays. Errors are ignored: a file left behind is
// what there was before.
func sweepTemporary(root *os.Root) {
	_ = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !tmpName.MatchString(d.Name()) {
			return nil
		}
		if info, err := d.Info(); err == nil && info.ModTime().Before(processStart) {
			_ = root.Remove(p)
		}
		return nil
	})
}

// Put writes body to a temporary file in the target directory, syncs it,
// renames it over key and syncs the directory, so the object is complete and
// durable when Put returns.
//
// The directory is opened once, as a Root of its own, and the file, the
// rename and the directory sync work inside it: through the store's root,
// each of them would walk the key's path again, component by component
// (about 31 openat calls per object under six partition keys, 9 now).
func (s *FileStore) Put(_ context.Context, key string, body Body) error {
	if err := template.CheckKey(key); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	root, err := s.open(true)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	dir, base := path.Split(key)
	d, err := openDirs(root, dir)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	defer d.Close()
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := "." + base + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := d.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	err = writeBody(f, body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.Rename(tmp, base)
	}
	if err != nil {
		d.Remove(tmp)
		return fmt.Errorf("put %s: %w", key, err)
	}
	df, err := d.Open(".")
	if err != nil {
		return fmt.Errorf("put %s: sync dir: %w", key, err)
	}
	defer df.Close()
	if err := df.Sync(); err != nil {
		return fmt.Errorf("put %s: sync dir: %w", key, err)
	}
	return nil
}

// openDirs opens dir (a clean relative path ending in '/', or empty) under
// root as a Root, creating the directories that are missing, one component
// at a time: each step is one openat, or a mkdirat and an openat.
func openDirs(root *os.Root, dir string) (*os.Root, error) {
	if dir == "" {
		return root.OpenRoot(".")
	}
	cur := root
	for name := range strings.SplitSeq(strings.TrimSuffix(dir, "/"), "/") {
		next, err := cur.OpenRoot(name)
		if errors.Is(err, fs.ErrNotExist) {
			if err = cur.Mkdir(name, 0o755); err == nil || errors.Is(err, fs.ErrExist) {
				next, err = cur.OpenRoot(name)
			}
		}
		if cur != root {
			cur.Close()
		}
		if err != nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

// List returns the keys of files under prefix, sorted.
func (s *FileStore) List(_ context.Context, prefix string) ([]string, error) {
	if err := template.CheckPrefix(prefix); err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	root, err := s.open(false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	var keys []string
	err = fs.WalkDir(root.FS(), path.Clean("./"+prefix), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		keys = append(keys, p)
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	sort.Strings(keys)
	return keys, nil
}

// Get reads one file.
func (s *FileStore) Get(_ context.Context, key string) ([]byte, error) {
	if err := template.CheckKey(key); err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	root, err := s.open(false)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return root.ReadFile(key)
}

// bufPool holds Put's write buffers: a new one per object would allocate
// its size again for each of thousands of objects a minute.
var bufPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 256<<10) }}

// writeBody writes body to w through a pooled buffer.
func writeBody(w io.Writer, body Body) error {
	bw := bufPool.Get().(*bufio.Writer)
	bw.Reset(w)
	defer func() {
		bw.Reset(nil)
		bufPool.Put(bw)
	}()
	if err := body(bw); err != nil {
		return err
	}
	return bw.Flush()
}
