module github.com/zkv-dev/zkv/election

go 1.25.0

require (
	github.com/go-zookeeper/zk v1.0.4
	go.uber.org/goleak v1.3.0
)

replace github.com/go-zookeeper/zk => ../third_party/go-zookeeper-zk
