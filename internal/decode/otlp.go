package decode

import (
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/sluice-data/sluice/internal/jsonx"
)

// CloudWatch Metric Streams' opentelemetry1.0 layout (Amazon CloudWatch
// User Guide, "CloudWatch metric stream output in OpenTelemetry 1.0.0
// format" and "Translations with OpenTelemetry 1.0.0 format"): a stream
// record holds one or more ExportMetricsServiceRequest messages, each
// preceded by its length as an unsigned varint. Each metric is a Summary
// whose data points carry the attributes Namespace, MetricName and
// Dimensions (a key-value list); sum is Sum, count is SampleCount, and the
// quantile values hold Min (0.0), Max (1.0) and any percentiles the stream
// was asked for. The resource carries cloud.account.id, cloud.region and
// aws.exporter.arn, the metric stream's ARN.
const (
	attrAccount  = "cloud.account.id"
	attrRegion   = "cloud.region"
	attrExporter = "aws.exporter.arn"
	// attrStreamName is the stream's name as the OpenTelemetry
	// collector's CloudWatch receivers write it; the 1.0.0 format has
	// aws.exporter.arn, which wins where both are present.
	attrStreamName = "aws.cloudwatch.metric_stream_name"
	attrNS         = "Namespace"
	attrName       = "MetricName"
	attrDims       = "Dimensions"
)

// otlpUnits maps the UCUM units CloudWatch writes back to CloudWatch's own
// unit names, which the JSON format carries; a unit combined with a slash
// maps each side ("By/s" is "Bytes/Second"). The translation table maps
// None to "1", but the 1.0.0 format's documented sample message carries
// "NoneTranslated": both are None.
var otlpUnits = map[string]string{
	"s": "Seconds", "us": "Microseconds", "ms": "Milliseconds",
	"By": "Bytes", "kBy": "Kilobytes", "MBy": "Megabytes", "GBy": "Gigabytes", "TBy": "Terabytes",
	"bit": "Bits", "kbit": "Kilobits", "MBit": "Megabits", "Mbit": "Megabits", "GBit": "Gigabits", "Gbit": "Gigabits",
	"Tbit": "Terabits", "TBit": "Terabits", "%": "Percent", "{Count}": "Count", "1": "None", "NoneTranslated": "None",
}

func cloudWatchUnit(u string) string {
	if cw, ok := otlpUnits[u]; ok {
		return cw
	}
	if a, b, ok := strings.Cut(u, "/"); ok {
		ca, oka := otlpUnits[a]
		if b == "s" && oka {
			return ca + "/Second"
		}
	}
	return u
}

var errNotSummary = errors.New("not CloudWatch's layout: only summary metrics are expected")

// decodeOTLP renders the data points of a Metric Streams opentelemetry1.0
// record as metric_stream JSON objects, appended to buf; it returns the
// end offset of each object in buf, and whether a string in it was not
// valid UTF-8 (each invalid byte then became U+FFFD, as every other format
// does). A record that is not entirely valid otherwise yields an error and
// no objects: it goes to the error output whole.
func decodeOTLP(data, buf []byte) ([]byte, []int, bool, error) {
	var ends []int
	fixed := false
	// ExportMetricsServiceRequest and MetricsData are the same message on
	// the wire (field 1: repeated ResourceMetrics), and MetricsData's
	// package does not pull in the gRPC gateway.
	var req metricspb.MetricsData
	for n := 0; len(data) > 0; n++ {
		size, l := protowire.ConsumeVarint(data)
		if l < 0 {
			return nil, nil, false, fmt.Errorf("message %d: bad length prefix: %w", n, protowire.ParseError(l))
		}
		data = data[l:]
		if size > uint64(len(data)) {
			return nil, nil, false, fmt.Errorf("message %d: length %d exceeds the %d bytes left", n, size, len(data))
		}
		req.Reset()
		if err := proto.Unmarshal(data[:size], &req); err != nil {
			// proto3 strings must be UTF-8 and the protobuf runtime has no
			// option to accept them otherwise: mend the strings on the
			// wire and try once more.
			mended, ok := mendUTF8(nil, data[:size], req.ProtoReflect().Descriptor())
			if !ok {
				return nil, nil, false, fmt.Errorf("message %d: %w", n, err)
			}
			req.Reset()
			if err := proto.Unmarshal(mended, &req); err != nil {
				return nil, nil, false, fmt.Errorf("message %d: %w", n, err)
			}
			fixed = true
		}
		data = data[size:]
		var err error
		buf, ends, err = appendRequest(buf, ends, &req)
		if err != nil {
			return nil, nil, false, fmt.Errorf("message %d: %w", n, err)
		}
	}
	return buf, ends, fixed, nil
}

// mendUTF8 appends msg, a message of type md in wire format, to dst with
// each byte of its string fields (at any depth) that is not part of valid
// UTF-8 replaced by U+FFFD. It reports whether it replaced any; it stops
// with false at the first field it cannot parse, which Unmarshal then
// reports.
func mendUTF8(dst, msg []byte, md protoreflect.MessageDescriptor) ([]byte, bool) {
	mended := false
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return dst, false
		}
		fd := md.Fields().ByNumber(num)
		if typ != protowire.BytesType || fd == nil || (fd.Kind() != protoreflect.StringKind && fd.Kind() != protoreflect.MessageKind) {
			m := protowire.ConsumeFieldValue(num, typ, msg[n:])
			if m < 0 {
				return dst, false
			}
			dst, msg = append(dst, msg[:n+m]...), msg[n+m:]
			continue
		}
		v, m := protowire.ConsumeBytes(msg[n:])
		if m < 0 {
			return dst, false
		}
		msg = msg[n+m:]
		var inner []byte
		ok := true
		if fd.Kind() == protoreflect.StringKind {
			inner, ok = mendString(v)
		} else {
			inner, ok = mendUTF8(nil, v, fd.Message())
			if !ok {
				inner = v // not parsable here: left for Unmarshal to report
			}
		}
		mended = mended || ok
		dst = protowire.AppendTag(dst, num, typ)
		dst = protowire.AppendBytes(dst, inner)
	}
	return dst, mended
}

// mendString returns s with each byte that is not part of valid UTF-8
// replaced by U+FFFD, and whether there was one. (strings.ToValidUTF8
// replaces a run of them by one.)
func mendString(s []byte) ([]byte, bool) {
	if utf8.Valid(s) {
		return s, false
	}
	out := make([]byte, 0, len(s)+8)
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, s[:size]...)
		}
		s = s[size:]
	}
	return out, true
}

func appendRequest(buf []byte, ends []int, req *metricspb.MetricsData) ([]byte, []int, error) {
	for _, rm := range req.GetResourceMetrics() {
		var account, region, stream, named string
		var arnRegion, arnAccount string
		for _, kv := range rm.GetResource().GetAttributes() {
			switch kv.GetKey() {
			case attrAccount:
				account = kv.GetValue().GetStringValue()
			case attrRegion:
				region = kv.GetValue().GetStringValue()
			case attrStreamName:
				named = kv.GetValue().GetStringValue()
			case attrExporter:
				// arn:aws:cloudwatch:REGION:ACCOUNT:metric-stream/NAME
				arn := kv.GetValue().GetStringValue()
				if head, name, ok := strings.Cut(arn, ":metric-stream/"); ok {
					stream = name
					if f := strings.Split(head, ":"); len(f) == 5 {
						arnRegion, arnAccount = f[3], f[4]
					}
				}
			}
		}
		// The resource's own attributes first; the ARN (or the name
		// attribute) fills what a resource leaves out.
		stream = cmp.Or(stream, named)
		account = cmp.Or(account, arnAccount)
		region = cmp.Or(region, arnRegion)
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				s := m.GetSummary()
				if s == nil {
					return nil, nil, fmt.Errorf("metric %q: %w", m.GetName(), errNotSummary)
				}
				for _, dp := range s.GetDataPoints() {
					var err error
					buf, err = appendPoint(buf, stream, account, region, m, dp)
					if err != nil {
						return nil, nil, fmt.Errorf("metric %q: %w", m.GetName(), err)
					}
					ends = append(ends, len(buf))
				}
			}
		}
	}
	return buf, ends, nil
}

func appendPoint(buf []byte, stream, account, region string, m *metricspb.Metric, dp *metricspb.SummaryDataPoint) ([]byte, error) {
	var ns, name string
	var dims *commonpb.KeyValueList
	for _, kv := range dp.GetAttributes() {
		switch kv.GetKey() {
		case attrNS:
			ns = kv.GetValue().GetStringValue()
		case attrName:
			name = kv.GetValue().GetStringValue()
		case attrDims:
			dims = kv.GetValue().GetKvlistValue()
		}
	}
	if ns == "" || name == "" {
		// The metric's name is amazonaws.com/<namespace>/<metric name>.
		full := strings.TrimPrefix(m.GetName(), "amazonaws.com/")
		if i := strings.LastIndexByte(full, '/'); i > 0 && ns == "" && name == "" {
			ns, name = full[:i], full[i+1:]
		}
	}
	if ns == "" || name == "" {
		return nil, errors.New(`data point has no "Namespace" and "MetricName" attributes`)
	}
	ts := dp.GetStartTimeUnixNano()
	if ts == 0 {
		ts = dp.GetTimeUnixNano()
	}
	buf = append(buf, `{"metric_stream_name":`...)
	buf = jsonx.AppendString(buf, []byte(stream))
	buf = append(buf, `,"account_id":`...)
	buf = jsonx.AppendString(buf, []byte(account))
	buf = append(buf, `,"region":`...)
	buf = jsonx.AppendString(buf, []byte(region))
	buf = append(buf, `,"namespace":`...)
	buf = jsonx.AppendString(buf, []byte(ns))
	buf = append(buf, `,"metric_name":`...)
	buf = jsonx.AppendString(buf, []byte(name))
	buf = append(buf, `,"dimensions":{`...)
	for i, kv := range dims.GetValues() {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = jsonx.AppendString(buf, []byte(kv.GetKey()))
		buf = append(buf, ':')
		buf = appendAny(buf, kv.GetValue())
	}
	buf = append(buf, `},"timestamp":`...)
	buf = strconv.AppendUint(buf, ts/1e6, 10)
	// max and min first, as CloudWatch's JSON format writes them.
	hi, lo := math.NaN(), math.NaN()
	var pcts []*metricspb.SummaryDataPoint_ValueAtQuantile
	for _, q := range dp.GetQuantileValues() {
		switch q.GetQuantile() {
		case 1:
			hi = q.GetValue()
		case 0:
			lo = q.GetValue()
		default:
			pcts = append(pcts, q)
		}
	}
	buf = append(buf, `,"value":{"max":`...)
	buf = appendFloat(buf, hi)
	buf = append(buf, `,"min":`...)
	buf = appendFloat(buf, lo)
	buf = append(buf, `,"sum":`...)
	buf = appendFloat(buf, dp.GetSum())
	buf = append(buf, `,"count":`...)
	buf = appendFloat(buf, float64(dp.GetCount()))
	for _, q := range pcts {
		buf = append(buf, `,"p`...)
		buf = strconv.AppendFloat(buf, math.Round(q.GetQuantile()*1e6)/1e4, 'f', -1, 64)
		buf = append(buf, `":`...)
		buf = appendFloat(buf, q.GetValue())
	}
	buf = append(buf, `},"unit":`...)
	buf = jsonx.AppendString(buf, []byte(cloudWatchUnit(m.GetUnit())))
	buf = append(buf, '}')
	return buf, nil
}

// appendFloat writes f as a JSON number, or null for NaN and infinities
// (which JSON cannot hold; a summary without a min or max has none).
func appendFloat(buf []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(buf, "null"...)
	}
	return strconv.AppendFloat(buf, f, 'g', -1, 64)
}

// appendAny writes an attribute value as JSON: CloudWatch's dimension
// values are strings, the rest is for completeness.
func appendAny(buf []byte, v *commonpb.AnyValue) []byte {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return jsonx.AppendString(buf, []byte(x.StringValue))
	case *commonpb.AnyValue_BoolValue:
		return strconv.AppendBool(buf, x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.AppendInt(buf, x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return appendFloat(buf, x.DoubleValue)
	case *commonpb.AnyValue_BytesValue:
		return jsonx.AppendString(buf, base64.StdEncoding.AppendEncode(nil, x.BytesValue))
	case *commonpb.AnyValue_ArrayValue:
		buf = append(buf, '[')
		for i, e := range x.ArrayValue.GetValues() {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendAny(buf, e)
		}
		return append(buf, ']')
	case *commonpb.AnyValue_KvlistValue:
		buf = append(buf, '{')
		for i, kv := range x.KvlistValue.GetValues() {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = jsonx.AppendString(buf, []byte(kv.GetKey()))
			buf = append(buf, ':')
			buf = appendAny(buf, kv.GetValue())
		}
		return append(buf, '}')
	}
	return append(buf, "null"...)
}
