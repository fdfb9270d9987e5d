// Command fakes3 serves an S3-compatible API (gofakes3) over a directory,
// in its own process, so that a benchmark measures the processor's memory
// and not the fake's: the in-memory backend would hold every object.
//
//	go run ./test/bench/fakes3 -dir /tmp/s3 -addr 127.0.0.1:9000 -bucket lake
package main

import (
	"flag"
	"log"
	"net/http"
	"os"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3afero"
)

func main() {
	dir := flag.String("dir", "", "directory to keep objects in")
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	bucket := flag.String("bucket", "lake", "bucket to create")
	flag.Parse()
	if *dir == "" {
		log.Fatal("fakes3: -dir is required")
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		log.Fatal(err)
	}
	fs, err := s3afero.FsPath(*dir, s3afero.FsPathCreate)
	if err != nil {
		log.Fatal(err)
	}
	backend, err := s3afero.MultiBucket(fs)
	if err != nil {
		log.Fatal(err)
	}
	if err := backend.CreateBucket(*bucket); err != nil && !gofakes3.IsAlreadyExists(err) {
		log.Fatal(err)
	}
	log.Printf("fakes3: s3://%s at http://%s, objects in %s", *bucket, *addr, *dir)
	log.Fatal(http.ListenAndServe(*addr, gofakes3.New(backend).Server()))
}
