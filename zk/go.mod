module github.com/zkv-dev/zkv/zk

go 1.25.0
