module github.com/zkv-dev/zkv/replication

go 1.25.0

require (
	github.com/hashicorp/go-retryablehttp v0.7.8
	github.com/zkv-dev/zkv/kvstore v0.0.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/google/btree v1.1.3 // indirect
	github.com/hashicorp/go-cleanhttp v0.5.2 // indirect
)

replace github.com/zkv-dev/zkv/kvstore => ../kvstore
