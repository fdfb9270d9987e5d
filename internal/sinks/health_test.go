package sinks

import "testing"

func TestRedact(t *testing.T) {
	tests := []struct{ give, want string }{
		{"https://user:pa55@search.example.com:9200", "https://search.example.com:9200"},
		{"http://127.0.0.1:9200", "http://127.0.0.1:9200"},
		{"s3://bucket/prefix/", "s3://bucket/prefix/"},
	}
	for _, tt := range tests {
		if got := Redact(tt.give); got != tt.want {
			t.Errorf("Redact(%q) = %q, want %q", tt.give, got, tt.want)
		}
	}
	msg := `Post "https://user:pa55@search.example.com:9200/_bulk": dial tcp: connection refused`
	if got, want := RedactText(msg), `Post "https://search.example.com:9200/_bulk": dial tcp: connection refused`; got != want {
		t.Errorf("RedactText = %q, want %q", got, want)
	}
}
