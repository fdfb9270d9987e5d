// Command kafkabroker runs kfake, franz-go's in-memory Kafka (the real wire
// protocol), as its own process, so end-to-end tests can kill processors
// while the broker lives on.
//
//	go run ./test/kafkabroker -port 9092 -topic logs -partitions 8
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 9092, "listen port")
	topic := flag.String("topic", "logs", "topic to create")
	partitions := flag.Int("partitions", 8, "partitions of the topic")
	flag.Parse()
	c, err := kfake.NewCluster(kfake.Ports(*port), kfake.SeedTopics(int32(*partitions), *topic),
		kfake.GroupMinSessionTimeout(time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println(c.ListenAddrs()[0])
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
