package iampolicy

import (
	"path"
	"strings"
)

// Request is one AWS API call to check against a policy: the IAM action,
// the resource ARN it acts on, and the condition keys it carries (for
// example s3:prefix of a ListObjectsV2).
type Request struct {
	Action   string
	Resource string
	Keys     map[string]string
}

// Allows reports whether some statement allows r. It evaluates what this
// package writes (Allow statements; actions and resources with * and ?
// wildcards; StringEquals, StringLike and their ForAnyValue forms), not
// IAM in full: a condition on a key that r does not carry does not match.
func (p Policy) Allows(r Request) bool {
	for _, s := range p.Statement {
		if s.Effect == "Allow" && anyMatch(s.Action, r.Action, true) && anyMatch(s.Resource, r.Resource, false) && conditionsHold(s.Condition, r.Keys) {
			return true
		}
	}
	return false
}

func anyMatch(patterns []string, v string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p, v = strings.ToLower(p), strings.ToLower(v)
		}
		if wildcard(p, v) {
			return true
		}
	}
	return false
}

// wildcard matches IAM's * (any run, including /) and ? (one character).
func wildcard(pattern, v string) bool {
	// path.Match stops * at '/', IAM does not: match segment-free by
	// replacing '/' with a character patterns never hold.
	const sep = "\x00"
	p := strings.ReplaceAll(strings.ReplaceAll(pattern, "/", sep), "[", "\\[")
	ok, err := path.Match(p, strings.ReplaceAll(v, "/", sep))
	return err == nil && ok
}

func conditionsHold(cond map[string]map[string][]string, keys map[string]string) bool {
	for op, kv := range cond {
		for key, want := range kv {
			got, ok := keys[key]
			if !ok {
				return false
			}
			like := strings.HasSuffix(op, "StringLike")
			match := false
			for _, w := range want {
				if (like && wildcard(w, got)) || (!like && w == got) {
					match = true
				}
			}
			if !match {
				return false
			}
		}
	}
	return true
}
