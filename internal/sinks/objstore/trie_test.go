package objstore

import (
	"fmt"
	"testing"

	"github.com/sluice-data/sluice/internal/jsonx"
)

// TestTrieFindsEveryField: the schema's field trie finds each declared
// path and nothing else, scanning a few children and hashing many.
func TestTrieFindsEveryField(t *testing.T) {
	for _, n := range []int{1, trieScan, trieScan + 1, 3 * trieScan} {
		tr := &trie{}
		for i := range n {
			tr.add(jsonx.ParsePath(fmt.Sprintf("f%d.g", i)))
			tr.add(jsonx.Path{fmt.Sprintf("h%d", i)})
		}
		for i := range n {
			f := tr.child([]byte(fmt.Sprintf("f%d", i)))
			if f == nil || f.leaf || f.child([]byte("g")) == nil || !f.child([]byte("g")).leaf {
				t.Errorf("%d fields: f%d.g not found as a leaf under an inner node", n, i)
			}
			if h := tr.child([]byte(fmt.Sprintf("h%d", i))); h == nil || !h.leaf {
				t.Errorf("%d fields: h%d not found as a leaf", n, i)
			}
		}
		for _, k := range []string{"", "f", "g", fmt.Sprintf("f%d", n), "h-1"} {
			if tr.child([]byte(k)) != nil {
				t.Errorf("%d fields: %q found", n, k)
			}
		}
	}
}
