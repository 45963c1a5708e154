package scenarios_test

import (
	"context"
	"log"
	"os"
	"time"

	"github.com/zkv-dev/zkv/driver/cluster"
	"github.com/zkv-dev/zkv/driver/scenarios"
)

// Run the three scenarios on servers started by the cluster package; exit 1 unless every
// check held.
func ExampleRun() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := cluster.Start(ctx, cluster.Options{
		Binary:    "bin/server",
		ZooKeeper: []string{"127.0.0.1:2181"},
		LogDir:    "logs",
		Args:      []string{"-session_timeout", "2s"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	rep, err := scenarios.Run(ctx, scenarios.Config{Cluster: c, Out: os.Stdout})
	if err != nil || !rep.OK() {
		os.Exit(1)
	}
	d, _ := rep.Timing(scenarios.TimingElection)
	log.Printf("failover took %v", d)
}
