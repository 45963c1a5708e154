module github.com/zkv-dev/zkv/election

go 1.25.0

require (
	github.com/zkv-dev/zkv/zk v0.1.0
	go.uber.org/goleak v1.3.0
)

replace github.com/zkv-dev/zkv/zk => ../zk
