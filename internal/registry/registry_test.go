package registry

import (
	"slices"
	"testing"
)

func TestRegistry(t *testing.T) {
	r := New[int]("things")
	r.Register("b", 2)
	r.Register("a", 1)
	if got := r.Kinds(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Kinds() = %v", got)
	}
	tests := []struct {
		give   string
		want   int
		wantOK bool
	}{
		{"a", 1, true},
		{"b", 2, true},
		{"c", 0, false},
	}
	for _, tt := range tests {
		got, ok := r.Lookup(tt.give)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("Lookup(%q) = %v, %v; want %v, %v", tt.give, got, ok, tt.want, tt.wantOK)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a kind twice did not panic")
		}
	}()
	r.Register("a", 3)
}
