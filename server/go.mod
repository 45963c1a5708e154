module github.com/zkv-dev/zkv/server

go 1.25.0
