package main

import (
	"math"

	"go.uber.org/zap"
)

// memoryLimitField is the go_memory_limit field of the start-up log: the
// limit in bytes, or "none" when there is none (automemlimit then sets
// GOMEMLIMIT to math.MaxInt64, a number that reads like a fault).
func memoryLimitField(limit int64) zap.Field {
	if limit <= 0 || limit == math.MaxInt64 {
		return zap.String("go_memory_limit", "none")
	}
	return zap.Int64("go_memory_limit", limit)
}
