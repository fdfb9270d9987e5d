package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/sluice-data/sluice/internal/sources"
)

// ProgressEvery is how often progress is reported when stderr is not a
// terminal (a log collector keeps every line); a terminal gets one line,
// redrawn twice a second.
const ProgressEvery = 10 * time.Second

// Finite reports whether every source ends by itself (file, archive, or
// any source in a replay), so a progress line means something.
func (p *Pipeline) Finite() bool {
	for _, s := range p.cur.Load().sources {
		if (s.cfg.Type == "kafka" || s.cfg.Type == "kinesis" || s.cfg.Type == "firehose_http") && !p.replay {
			return false
		}
	}
	return true
}

// ShowProgress reports the run on w until ctx ends: a line redrawn in
// place when w is a terminal, a new line every ProgressEvery otherwise.
// label starts each line ("run", "replay").
func (p *Pipeline) ShowProgress(ctx context.Context, w *os.File, label string) {
	st, err := w.Stat()
	tty := err == nil && st.Mode()&os.ModeCharDevice != 0
	every := ProgressEvery
	if tty {
		every = 500 * time.Millisecond
	}
	p.showProgress(ctx, w, tty, every, label)
}

func (p *Pipeline) showProgress(ctx context.Context, w io.Writer, tty bool, every time.Duration, label string) {
	start := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(w)
			}
			return
		case <-t.C:
			line := p.ProgressLine(label, time.Since(start))
			if tty {
				fmt.Fprintf(w, "\r\033[K%s", line)
			} else {
				io.WriteString(w, line+"\n")
			}
		}
	}
}

// ProgressLine renders how far the run is: messages read and the rate,
// then, for sources that know their end (a Kafka range, files), the ETA
// and each one's share done; otherwise the messages read per source.
func (p *Pipeline) ProgressLine(label string, elapsed time.Duration) string {
	read, parts := p.ReplayProgress()
	var per []string
	if len(parts) == 0 {
		for _, src := range p.cur.Load().sources {
			per = append(per, fmt.Sprintf("%s %d", src.cfg.Name, src.stats.Messages.Load()))
		}
	}
	return progressLine(label, read, elapsed, parts, per)
}

// progressLine is ProgressLine on its inputs. Done and Total may count
// records (Kafka) or bytes (files), so the ETA comes from the share done
// so far, not from the record rate.
func progressLine(label string, read int64, elapsed time.Duration, parts []sources.PartitionProgress, per []string) string {
	rate := float64(read) / elapsed.Seconds()
	if len(parts) == 0 {
		if len(per) > 8 {
			per = append(per[:8], fmt.Sprintf("… %d more", len(per)-8))
		}
		return fmt.Sprintf("%s: %d records, %.0f/s | %s", label, read, rate, strings.Join(per, ", "))
	}
	var done, total int64
	var pcts []string
	for _, pp := range parts {
		done += pp.Done
		total += pp.Total
		pct := 100.0
		if pp.Total > 0 {
			pct = 100 * float64(pp.Done) / float64(pp.Total)
		}
		pcts = append(pcts, fmt.Sprintf("%s %.0f%%", pp.Partition, pct))
	}
	eta := "?"
	switch {
	case total > 0 && done >= total:
		eta = "0s"
	case done > 0:
		eta = time.Duration(float64(elapsed) * float64(total-done) / float64(done)).Round(time.Second).String()
	}
	if len(pcts) > 8 {
		pcts = append(pcts[:8], fmt.Sprintf("… %d more", len(pcts)-8))
	}
	return fmt.Sprintf("%s: %d records, %.0f/s, ETA %s | %s", label, read, rate, eta, strings.Join(pcts, ", "))
}
