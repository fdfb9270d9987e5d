package config

import "strings"

// SeedBrokers returns the Kafka seed brokers of list, splitting entries
// that hold a comma-separated list, as MSK's bootstrap string does:
// brokers: ["${KAFKA_BROKERS}"] with KAFKA_BROKERS=b-1:9092,b-2:9092 is two
// seed brokers. (${VAR} is expanded inside one value, never into the YAML
// text, so it cannot make two list items.) The Kafka source connects to
// them and iam-policy names the MSK cluster from them.
func SeedBrokers(list []string) []string {
	var out []string
	for _, b := range list {
		for part := range strings.SplitSeq(b, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out
}
