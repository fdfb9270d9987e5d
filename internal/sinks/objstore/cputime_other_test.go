//go:build !unix

package objstore

import "time"

func cpuTime() time.Duration { return 0 }
