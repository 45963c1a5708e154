module github.com/zkv-dev/zkv/kvstore

go 1.25.0
