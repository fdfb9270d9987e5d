package testutil

import (
	"fmt"
	"runtime"
	"time"
)

// Bounded runs f and panics if it runs past 20s or grows the heap past
// 2GiB. A test of a runaway input (a jq program that never ends or never
// stops producing) then fails fast on code that does not bound it,
// instead of hanging CI or taking the machine with it. It panics rather
// than failing the test, because the runaway goroutine cannot be stopped.
func Bounded(what string, f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	give := time.After(20 * time.Second)
	var ms runtime.MemStats
	for {
		select {
		case <-done:
			return
		case <-give:
			panic(what + ": still running after 20s")
		case <-tick.C:
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > 2<<30 {
				panic(fmt.Sprintf("%s: heap at %d MiB", what, ms.HeapAlloc>>20))
			}
		}
	}
}
