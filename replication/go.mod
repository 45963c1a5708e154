module github.com/zkv-dev/zkv/replication

go 1.25.0
