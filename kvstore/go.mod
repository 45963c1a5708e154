module github.com/zkv-dev/zkv/kvstore

go 1.25.0

require (
	github.com/google/btree v1.1.3
	go.uber.org/goleak v1.3.0
)
