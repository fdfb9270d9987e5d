package testutil

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
)

// SSMFake is a stand-in for AWS Systems Manager Parameter Store's JSON
// protocol (GetParameter only), for tests of code that reads parameters
// through the real SDK client. It refuses a SecureString read without
// WithDecryption the way the service would hand back ciphertext, so a
// client that forgets to ask for decryption fails its test.
type SSMFake struct {
	Server *httptest.Server

	mu     sync.Mutex
	params map[string]ssmParam
	calls  []string // X-Amz-Target of each request
}

type ssmParam struct {
	typ     string
	value   string
	version int64
}

// NewSSMFake starts a fake; it stops when the test ends.
func NewSSMFake(t interface{ Cleanup(func()) }) *SSMFake {
	f := &SSMFake{params: map[string]ssmParam{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Server.Close)
	return f
}

// Put stores a parameter (typ String or SecureString), bumping its
// version as PutParameter with Overwrite does.
func (f *SSMFake) Put(name, typ, value string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.params[name]
	f.params[name] = ssmParam{typ: typ, value: value, version: p.version + 1}
}

// Calls returns the API operations requested so far, in order.
func (f *SSMFake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *SSMFake) serve(w http.ResponseWriter, r *http.Request) {
	target := r.Header.Get("X-Amz-Target")
	f.mu.Lock()
	f.calls = append(f.calls, target)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	fail := func(status int, typ, msg string) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
	}
	if r.Header.Get("Authorization") == "" {
		fail(400, "MissingAuthenticationTokenException", "request is not signed")
		return
	}
	if target != "AmazonSSM.GetParameter" {
		fail(400, "InvalidAction", "the fake serves GetParameter only, not "+target)
		return
	}
	var in struct {
		Name           string
		WithDecryption bool
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		fail(400, "SerializationException", err.Error())
		return
	}
	f.mu.Lock()
	p, ok := f.params[in.Name]
	f.mu.Unlock()
	if !ok {
		fail(400, "ParameterNotFound", "")
		return
	}
	value := p.value
	if p.typ == "SecureString" && !in.WithDecryption {
		value = "AQICAHh-ciphertext-" + in.Name
	}
	json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{
		"Name": in.Name, "Type": p.typ, "Value": value, "Version": p.version,
		"ARN": "arn:aws:ssm:us-east-1:123456789012:parameter" + in.Name,
	}})
}
