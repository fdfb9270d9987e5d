package opensearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/signer/awsv2"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/sinks"
)

// newClient builds the official client: every endpoint, TLS, and auth
// (SigV4 for managed domains "es" and Serverless collections "aoss", whose
// signer sends the signed payload hash; basic; none). The client does not
// retry: the sink retries per item.
func newClient(cfg *config.Sink) (*opensearch.Client, error) {
	off := false
	oc := opensearch.Config{
		Addresses:             cfg.Endpoints,
		DisableRetry:          true,
		HealthCheckMaxRetries: -1,
		DiscoverNodesOnStart:  &off,
		RequestTimeout:        2 * time.Minute,
		InsecureSkipVerify:    cfg.TLS.InsecureSkipVerify,
	}
	if cfg.TLS.CAFile != "" {
		pem, err := os.ReadFile(cfg.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %w", err)
		}
		oc.CACert = pem
	}
	switch cfg.Auth.Type {
	case "basic":
		oc.Username, oc.Password = cfg.Auth.Username, cfg.Auth.Password
	case "sigv4":
		opts := []func(*awsconfig.LoadOptions) error{}
		if cfg.Auth.Region != "" {
			opts = append(opts, awsconfig.WithRegion(cfg.Auth.Region))
		}
		awsCfg, err := awsconfig.LoadDefaultConfig(context.Background(), opts...)
		if err != nil {
			return nil, fmt.Errorf("aws config: %w", err)
		}
		if awsCfg.Region == "" {
			return nil, fmt.Errorf("auth: sigv4 needs a region (auth.region or AWS_REGION)")
		}
		signer, err := awsv2.NewSignerWithService(awsCfg, cfg.Auth.Service)
		if err != nil {
			return nil, err
		}
		oc.Signer = signer
	}
	return opensearch.NewClient(oc)
}

// bootstrap applies the configured index template and ingest pipeline.
// PUT replaces them, so applying them at every start is idempotent.
func (s *Sink) bootstrap(ctx context.Context) error {
	for _, b := range []struct {
		what, path string
		nf         config.NamedFile
	}{
		{"index template", "/_index_template/", s.cfg.IndexTemplate},
		{"ingest pipeline", "/_ingest/pipeline/", s.cfg.IngestPipeline},
	} {
		if b.nf.Name == "" {
			continue
		}
		body, err := os.ReadFile(b.nf.File)
		if err != nil {
			return fmt.Errorf("%s: %w", b.what, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, b.path+url.PathEscape(b.nf.Name), bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.client.Perform(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", b.what, b.nf.Name, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return fmt.Errorf("%s %s: %s: %s", b.what, b.nf.Name, resp.Status, bytes.TrimSpace(msg))
		}
		s.log.Info("applied "+b.what, zap.String("sink", s.name), zap.String("name", b.nf.Name))
	}
	return nil
}

// outcome is what one bulk request did to its items.
type outcome struct {
	failed []*sinks.Failure
	retry  []*item
	split  [][]*item // halves of a request refused as too large
}

var bodyPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// send makes one bulk request of items and sorts them by the answer.
func (s *Sink) send(items []*item) outcome {
	buf := bodyPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bodyPool.Put(buf)
	for _, it := range items {
		buf.Write(it.lines)
	}
	path := "/_bulk"
	if s.pipeline != "" {
		path += "?pipeline=" + url.QueryEscape(s.pipeline)
	}
	req, err := http.NewRequestWithContext(s.abortCtx, http.MethodPost, path, bytes.NewReader(buf.Bytes()))
	if err != nil {
		return s.allFailed(items, "OpenSearch.RequestFailed", err.Error())
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	start := time.Now()
	resp, err := s.client.Perform(req)
	s.mLatency.Observe(time.Since(start).Seconds())
	s.mSize.Observe(float64(buf.Len()))
	if err != nil {
		s.health.Failed(s.endpointOf(err), err)
		return retryAll(items, "request failed: "+err.Error())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		s.health.Failed(s.endpointOf(resp), err)
		return retryAll(items, "reading the response: "+err.Error())
	}
	switch code := resp.StatusCode; {
	case code == http.StatusRequestEntityTooLarge:
		if len(items) == 1 {
			return s.allFailed(items, "OpenSearch.DocumentTooLarge", fmt.Sprintf("413: the document alone (%d bytes) exceeds the cluster's http.max_content_length", len(items[0].lines)))
		}
		h := len(items) / 2
		return outcome{split: [][]*item{items[:h:h], items[h:]}}
	case code == http.StatusTooManyRequests || code >= 500 || code == http.StatusUnauthorized || code == http.StatusForbidden:
		s.health.Failed(s.endpointOf(resp), errors.New(resp.Status+": "+snippet(body)))
		return retryAll(items, resp.Status+": "+snippet(body))
	case code/100 != 2:
		return s.allFailed(items, "OpenSearch.RequestRejected", resp.Status+": "+snippet(body))
	}
	var br bulkResponse
	if err := json.Unmarshal(body, &br); err != nil || len(br.Items) != len(items) {
		// Answers that cannot be matched to items: send them all again
		// (ids make that idempotent).
		why := fmt.Sprintf("unreadable bulk response (%d items for %d documents): %s", len(br.Items), len(items), snippet(body))
		s.health.Failed(s.endpointOf(resp), errors.New(why))
		return retryAll(items, why)
	}
	var out outcome
	indexed := 0
	for i, it := range items {
		var res *bulkItem
		for _, v := range br.Items[i] {
			res = v
		}
		switch {
		case res == nil:
			out.retry = append(out.retry, it)
			it.last = "empty bulk item"
		case res.Status/100 == 2 || res.Status == http.StatusConflict:
			indexed++
		case res.Status == http.StatusTooManyRequests || res.Status >= 500:
			it.last = strconv.Itoa(res.Status) + " " + res.reason()
			out.retry = append(out.retry, it)
		default:
			out.failed = append(out.failed, s.failure(it, "OpenSearch."+res.errType(), fmt.Sprintf("%d %s", res.Status, res.reason())))
		}
	}
	s.stats.indexed.Add(int64(indexed))
	s.mIndexed.Add(float64(indexed))
	if len(out.retry) == len(items) {
		// Every item asked to be sent again: the cluster takes nothing.
		s.health.Failed(s.endpointOf(resp), errors.New("every item answered "+out.retry[0].last))
	} else {
		s.health.OK()
	}
	return out
}

// endpointOf names the endpoint a request went to, from the response or
// the client's error; failing that, the configured endpoints. User
// information is removed by the health tracker.
func (s *Sink) endpointOf(v any) string {
	switch x := v.(type) {
	case *http.Response:
		if x.Request != nil && x.Request.URL != nil {
			return x.Request.URL.Scheme + "://" + x.Request.URL.Host
		}
	case error:
		var ue *url.Error
		if errors.As(x, &ue) {
			if u, err := url.Parse(ue.URL); err == nil && u.Host != "" {
				return u.Scheme + "://" + u.Host
			}
		}
	}
	eps := make([]string, len(s.cfg.Endpoints))
	for i, e := range s.cfg.Endpoints {
		eps[i] = sinks.Redact(e)
	}
	return strings.Join(eps, ",")
}

func retryAll(items []*item, why string) outcome {
	for _, it := range items {
		it.last = why
	}
	return outcome{retry: items}
}

func (s *Sink) allFailed(items []*item, code, msg string) outcome {
	var out outcome
	for _, it := range items {
		out.failed = append(out.failed, s.failure(it, code, msg))
	}
	return out
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

type bulkResponse struct {
	Errors bool                   `json:"errors"`
	Items  []map[string]*bulkItem `json:"items"`
}

type bulkItem struct {
	Status int `json:"status"`
	Error  *struct {
		Type     string `json:"type"`
		Reason   string `json:"reason"`
		CausedBy *struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		} `json:"caused_by"`
	} `json:"error"`
}

func (b *bulkItem) errType() string {
	if b.Error == nil || b.Error.Type == "" {
		return "Status" + strconv.Itoa(b.Status)
	}
	return b.Error.Type
}

func (b *bulkItem) reason() string {
	if b.Error == nil {
		return http.StatusText(b.Status)
	}
	r := b.Error.Type + ": " + b.Error.Reason
	if c := b.Error.CausedBy; c != nil {
		r += " (caused by " + c.Type + ": " + c.Reason + ")"
	}
	return r
}
