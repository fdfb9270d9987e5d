package config

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdMention = regexp.MustCompile(`[A-Za-z0-9_./-]*[A-Za-z0-9_-]\.md\b`)
	mdHeading = regexp.MustCompile(`(?m)^#+ +(.+)$`)
)

// TestDocsStandAlone: the repository's Markdown (README, docs/, deploy/)
// names no file a clone lacks, such as notes kept outside the repository,
// and its relative links reach a file and heading that exist.
func TestDocsStandAlone(t *testing.T) {
	const root = "../.."
	var docs []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "emulators" || d.Name() == "out") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			docs = append(docs, p)
		}
		return nil
	})
	if len(docs) < 3 {
		t.Fatalf("found only %v", docs)
	}
	exists := func(doc, name string) (string, bool) {
		for _, base := range []string{filepath.Dir(doc), root} {
			p := filepath.Join(base, name)
			if _, err := os.Stat(p); err == nil {
				return p, true
			}
		}
		return "", false
	}
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		rel, _ := filepath.Rel(root, doc)
		for _, m := range mdMention.FindAllString(text, -1) {
			if _, ok := exists(doc, m); !ok {
				t.Errorf("%s names %s, which is not in the repository", rel, m)
			}
		}
		for _, m := range mdLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			p := doc
			if file != "" {
				var ok bool
				if p, ok = exists(doc, file); !ok {
					t.Errorf("%s links to %s, which does not exist", rel, target)
					continue
				}
			}
			if anchor == "" {
				continue
			}
			body, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("%s links to %s: %v", rel, target, err)
				continue
			}
			found := false
			for _, h := range mdHeading.FindAllStringSubmatch(string(body), -1) {
				found = found || headingAnchor(h[1]) == anchor
			}
			if !found {
				t.Errorf("%s links to %s, which has no heading #%s", rel, target, anchor)
			}
		}
	}
}

// headingAnchor is the anchor GitHub gives a heading: lower case, spaces
// as hyphens, punctuation other than hyphens and underscores dropped.
func headingAnchor(h string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}
