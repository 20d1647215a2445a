package adapter_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/common/model"

	"github.com/custom-sd/custom-sd/adapter"
)

// static is the smallest Discoverer: it sends one fixed set and waits.
type static []*adapter.Group

func (s static) Run(ctx context.Context, up chan<- []*adapter.Group) {
	select {
	case up <- s:
	case <-ctx.Done():
		return
	}
	<-ctx.Done()
}

// Bridge any discovery system to Prometheus's file_sd: implement Discoverer
// and let the adapter coalesce, diff and write atomically.
func Example() {
	dir, err := os.MkdirTemp("", "example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "targets.json")

	d := static{{
		Source:  "inventory",
		Labels:  model.LabelSet{"env": "prod"},
		Targets: []model.LabelSet{{model.AddressLabel: "127.0.0.1:9100"}, {model.AddressLabel: "127.0.0.1:9090"}},
	}}
	a, err := adapter.New(path, map[string]adapter.Discoverer{"inventory": d}, adapter.Options{})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	for !a.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done

	b, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	fmt.Print(string(b))
	// Output:
	// [
	//   {"targets":["127.0.0.1:9090","127.0.0.1:9100"],"labels":{"env":"prod"}}
	// ]
}
