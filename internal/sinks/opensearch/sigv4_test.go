package opensearch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/sluice-data/sluice/internal/testutil"
)

// verifySigV4 recomputes, with the SDK's signer and the secret, the
// signature of a request as the server received it: the headers it names
// as signed, its body hash, its time. It returns nil only if the
// Authorization header is exactly what the signer produces.
func verifySigV4(r *http.Request, body []byte, secret, service, region string) error {
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") {
		return fmt.Errorf("not SigV4: %q", auth)
	}
	var signed []string
	var akid, scope string
	for _, part := range strings.Split(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256 "), ", ") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "Credential":
			akid, scope, _ = strings.Cut(v, "/")
		case "SignedHeaders":
			signed = strings.Split(v, ";")
		}
	}
	if want := "/" + region + "/" + service + "/aws4_request"; !strings.HasSuffix(scope, want) {
		return fmt.Errorf("credential scope %q, want …%s", scope, want)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	if got := r.Header.Get("X-Amz-Content-Sha256"); got != hash {
		return fmt.Errorf("X-Amz-Content-Sha256 = %q, body hashes to %q", got, hash)
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return fmt.Errorf("X-Amz-Date: %v", err)
	}
	req, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), nil)
	req.Host = r.Host
	for _, h := range signed {
		switch h {
		case "host":
		case "content-length":
			req.ContentLength = r.ContentLength
		default:
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	creds := aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hash, service, region, at); err != nil {
		return err
	}
	if want := req.Header.Get("Authorization"); want != auth {
		return fmt.Errorf("signature mismatch:\n got  %s\n want %s", auth, want)
	}
	return nil
}

func TestSigV4(t *testing.T) {
	for _, service := range []string{"es", "aoss"} {
		t.Run(service, func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
			t.Setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
			t.Setenv("AWS_SESSION_TOKEN", "")
			t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
			fake := testutil.NewSearchFake(t)
			var mu sync.Mutex
			var checked int
			var failures []string
			fake.Request = func(r *http.Request, body []byte, n int) (int, bool) {
				mu.Lock()
				defer mu.Unlock()
				checked++
				if err := verifySigV4(r, body, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", service, "eu-west-1"); err != nil {
					failures = append(failures, err.Error())
					return 403, false
				}
				// The verifier must also be able to say no.
				if verifySigV4(r, body, "not-the-secret", service, "eu-west-1") == nil {
					failures = append(failures, "a wrong secret verified")
				}
				return 0, false
			}
			h := newHarness(t, fake, fmt.Sprintf("    auth: {type: sigv4, service: %s, region: eu-west-1}\n    retry: {max_elapsed: 1s}", service))
			acked := h.feed(t, 1, `{"a":1}`, `{"b":"ü"}`)
			h.s.Flush(context.Background())
			if err := wait(t, acked, 5*time.Second); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if checked == 0 || len(failures) > 0 {
				t.Fatalf("%d requests checked; failures: %v", checked, failures)
			}
			if fake.Docs() != 2 {
				t.Errorf("indexed %d", fake.Docs())
			}
		})
	}
}
