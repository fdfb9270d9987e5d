package config

import (
	"slices"
	"testing"
)

func TestSeedBrokers(t *testing.T) {
	tests := []struct {
		give []string
		want []string
	}{
		{[]string{"b-1:9092"}, []string{"b-1:9092"}},
		{[]string{"b-1:9092,b-2:9092, b-3:9092"}, []string{"b-1:9092", "b-2:9092", "b-3:9092"}},
		{[]string{"a:1", "b:2,c:3,"}, []string{"a:1", "b:2", "c:3"}},
	}
	for _, tt := range tests {
		if got := SeedBrokers(tt.give); !slices.Equal(got, tt.want) {
			t.Errorf("SeedBrokers(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
}
