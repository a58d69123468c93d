// vcsim: VMware's vCenter simulator (govmomi's simulator.VPX model) on plain http at 127.0.0.1.
//
// Built by tests/vcsim/__init__.py against Debian's golang-github-vmware-govmomi-dev
// (GO111MODULE=off GOPATH=/usr/share/gocode). Prints the SDK URL (with the default login) on
// its first line, then serves until its standard input closes (the test process ended) or
// -lifetime passes, so it never outlives the tests.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"
	"time"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	lifetime := flag.Duration("lifetime", 30*time.Minute, "exit after this long")
	flag.Parse()

	model := simulator.VPX()
	defer model.Remove()
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	model.Service.Listen = &url.URL{Host: "127.0.0.1:0"}
	server := model.Service.NewServer()
	defer server.Close()

	fmt.Println(server.URL.String())
	os.Stdout.Sync()

	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(*lifetime):
	}
}
