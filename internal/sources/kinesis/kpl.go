package kinesis

import (
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// kplMagic starts a KPL aggregated record; 16 bytes of MD5 over the
// protobuf message end it.
var kplMagic = []byte{0xF3, 0x89, 0x9A, 0xC2}

// userRecord is one record inside a KPL aggregate.
type userRecord struct {
	partitionKey string
	data         []byte
}

// isAggregated reports whether data has the KPL framing.
func isAggregated(data []byte) bool {
	return len(data) >= len(kplMagic)+md5.Size && bytes.Equal(data[:len(kplMagic)], kplMagic)
}

// deaggregate decodes a KPL AggregatedRecord:
//
//	message AggregatedRecord {
//	  repeated string partition_key_table     = 1;
//	  repeated string explicit_hash_key_table = 2;
//	  repeated Record records                 = 3;
//	}
//	message Record {
//	  required uint64 partition_key_index     = 1;
//	  optional uint64 explicit_hash_key_index = 2;
//	  required bytes  data                    = 3;
//	  repeated Tag    tags                    = 4;
//	}
//
// The protobuf is read with protowire (no generated code for two
// messages); the MD5 is checked first.
func deaggregate(data []byte) ([]userRecord, error) {
	body := data[len(kplMagic) : len(data)-md5.Size]
	sum := md5.Sum(body)
	if !bytes.Equal(sum[:], data[len(data)-md5.Size:]) {
		return nil, errors.New("KPL aggregate: MD5 mismatch")
	}
	var keys []string
	var raw [][]byte
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return nil, fmt.Errorf("KPL aggregate: %w", protowire.ParseError(n))
		}
		body = body[n:]
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return nil, fmt.Errorf("KPL aggregate: partition key: %w", protowire.ParseError(n))
			}
			keys = append(keys, string(v))
			body = body[n:]
		case num == 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return nil, fmt.Errorf("KPL aggregate: record: %w", protowire.ParseError(n))
			}
			raw = append(raw, v)
			body = body[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, body)
			if n < 0 {
				return nil, fmt.Errorf("KPL aggregate: field %d: %w", num, protowire.ParseError(n))
			}
			body = body[n:]
		}
	}
	out := make([]userRecord, 0, len(raw))
	for i, r := range raw {
		var ur userRecord
		keyIdx := -1
		hasData := false
		for len(r) > 0 {
			num, typ, n := protowire.ConsumeTag(r)
			if n < 0 {
				return nil, fmt.Errorf("KPL aggregate: record %d: %w", i, protowire.ParseError(n))
			}
			r = r[n:]
			switch {
			case num == 1 && typ == protowire.VarintType:
				v, n := protowire.ConsumeVarint(r)
				if n < 0 {
					return nil, fmt.Errorf("KPL aggregate: record %d: %w", i, protowire.ParseError(n))
				}
				keyIdx = int(v)
				r = r[n:]
			case num == 3 && typ == protowire.BytesType:
				v, n := protowire.ConsumeBytes(r)
				if n < 0 {
					return nil, fmt.Errorf("KPL aggregate: record %d: %w", i, protowire.ParseError(n))
				}
				ur.data, hasData = v, true
				r = r[n:]
			default:
				n := protowire.ConsumeFieldValue(num, typ, r)
				if n < 0 {
					return nil, fmt.Errorf("KPL aggregate: record %d field %d: %w", i, num, protowire.ParseError(n))
				}
				r = r[n:]
			}
		}
		if keyIdx < 0 || keyIdx >= len(keys) || !hasData {
			return nil, fmt.Errorf("KPL aggregate: record %d: partition key index %d of %d, data present %v", i, keyIdx, len(keys), hasData)
		}
		ur.partitionKey = keys[keyIdx]
		out = append(out, ur)
	}
	return out, nil
}

// aggregate builds a KPL aggregated record (for tests and tools).
func aggregate(recs []userRecord) []byte {
	var body []byte
	idx := map[string]int{}
	var keys []string
	for _, r := range recs {
		if _, ok := idx[r.partitionKey]; !ok {
			idx[r.partitionKey] = len(keys)
			keys = append(keys, r.partitionKey)
		}
	}
	for _, k := range keys {
		body = protowire.AppendTag(body, 1, protowire.BytesType)
		body = protowire.AppendString(body, k)
	}
	for _, r := range recs {
		var rec []byte
		rec = protowire.AppendTag(rec, 1, protowire.VarintType)
		rec = protowire.AppendVarint(rec, uint64(idx[r.partitionKey]))
		rec = protowire.AppendTag(rec, 3, protowire.BytesType)
		rec = protowire.AppendBytes(rec, r.data)
		body = protowire.AppendTag(body, 3, protowire.BytesType)
		body = protowire.AppendBytes(body, rec)
	}
	sum := md5.Sum(body)
	out := append(append([]byte(nil), kplMagic...), body...)
	return append(out, sum[:]...)
}
