package archivefmt

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/sluice-data/sluice/internal/record"
)

// TestRoundTrip: what Append writes, Decode reads back as the message the
// source first read: bytes, position (Token and Sub included), arrival to
// the millisecond, and the source's name as Origin.
func TestRoundTrip(t *testing.T) {
	at := time.Date(2024, 11, 3, 7, 59, 59, 987654321, time.FixedZone("KST", 9*3600))
	tests := []struct {
		name string
		rec  record.Record
	}{
		{"file line", record.Record{Source: "app", Pos: record.Position{Partition: "/var/log/a.ndjson", Offset: 42}, Raw: []byte(`{"a":1}`)}},
		{"kinesis aggregated", record.Record{Source: "kin", Pos: record.Position{Partition: "shardId-000000000001", Offset: 7,
			Token: "49590338271490256608559692538361571095921575989136588898", Sub: "/3"}, Raw: []byte{0, 1, 2, 0xff, '\n', '"'}}},
		{"names to escape", record.Record{Source: "a\"b\\c\n", Pos: record.Position{Partition: "topic/3\t\u2028", Offset: 3, Token: "0", Sub: "/0\u2028"}, Raw: nil}},
		{"empty", record.Record{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tt.rec
			rec.Arrival = at
			line := Append([]byte("prefix"), &rec)
			if !bytes.HasPrefix(line, []byte("prefix")) || !bytes.HasSuffix(line, []byte("}\n")) || bytes.Count(line, []byte("\n")) != 1 {
				t.Fatalf("not one line appended: %q", line)
			}
			m, err := Decode(line[len("prefix"):])
			if err != nil {
				t.Fatal(err)
			}
			if m.Origin != rec.Source || m.Pos != rec.Pos || !bytes.Equal(m.Data, rec.Raw) {
				t.Errorf("decoded origin %q pos %+v data %q\nwant origin %q pos %+v data %q", m.Origin, m.Pos, m.Data, rec.Source, rec.Pos, rec.Raw)
			}
			if want := at.Truncate(time.Millisecond).UTC(); !m.Arrival.Equal(want) || m.Arrival.Location() != time.UTC {
				t.Errorf("arrival = %v, want %v", m.Arrival, want)
			}
		})
	}
}

// TestOmitsEmptyToken: positions without a token or sub keep the envelope
// as short as before those fields existed.
func TestOmitsEmptyToken(t *testing.T) {
	rec := record.Record{Source: "s", Pos: record.Position{Partition: "p", Offset: 1}, Arrival: time.UnixMilli(1730617200000), Raw: []byte("x")}
	got := string(Append(nil, &rec))
	if want := `{"source":"s","partition":"p","offset":1,"arrival":1730617200000,"data":"eA=="}` + "\n"; got != want {
		t.Errorf("envelope = %s want %s", got, want)
	}
}

func TestDecodeDamaged(t *testing.T) {
	// Positions Sluice never writes would go into object names as they
	// are: a token "a/b" made directories, "../../x" failed the sink.
	for _, line := range []string{``, `{`, `{"offset":"x"}`, `{"data":"not base64!"}`, `[1]`,
		`{"offset":-5}`, `{"token":"../../evil"}`, `{"token":"a/b"}`, `{"token":"` + strings.Repeat("9", 130) + `"}`} {
		if _, err := Decode([]byte(line)); err == nil || !strings.Contains(err.Error(), "not an archive envelope") {
			t.Errorf("Decode(%q) = %v, want not an archive envelope", line, err)
		}
	}
}

// TestHourPrefix: the listing prefix of an hour is Layout rendered for
// that hour, in UTC, whatever the time's zone or minute.
func TestHourPrefix(t *testing.T) {
	tests := []struct {
		at   time.Time
		want string
	}{
		{time.Date(2024, 11, 3, 7, 0, 0, 0, time.UTC), "dt=2024-11-03/hour=07/"},
		{time.Date(2024, 11, 3, 7, 59, 59, 999, time.UTC), "dt=2024-11-03/hour=07/"},
		{time.Date(2024, 11, 4, 8, 30, 0, 0, time.FixedZone("KST", 9*3600)), "dt=2024-11-03/hour=23/"},
		{time.Date(2024, 12, 31, 23, 0, 0, 0, time.UTC), "dt=2024-12-31/hour=23/"},
	}
	for _, tt := range tests {
		if got := HourPrefix(tt.at); got != tt.want {
			t.Errorf("HourPrefix(%v) = %q, want %q", tt.at, got, tt.want)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add("src", "shard-1", int64(5), "4959", "/1", int64(1730617200123), []byte(`{"a":1}`))
	f.Fuzz(func(t *testing.T, source, partition string, offset int64, token, sub string, arrival int64, raw []byte) {
		for _, s := range []string{source, partition, token, sub} {
			if !utf8.ValidString(s) {
				t.Skip("names are JSON strings: invalid UTF-8 comes back as U+FFFD")
			}
		}
		rec := record.Record{Source: source, Pos: record.Position{Partition: partition, Offset: offset, Token: token, Sub: sub},
			Arrival: time.UnixMilli(arrival), Raw: raw}
		m, err := Decode(Append(nil, &rec))
		if err != nil {
			t.Fatal(err)
		}
		if m.Origin != rec.Source || m.Pos != rec.Pos || !bytes.Equal(m.Data, rec.Raw) || m.Arrival.UnixMilli() != arrival {
			t.Errorf("round trip of %+v gave %+v", rec, m)
		}
	})
}
