module github.com/zkv-dev/zkv/integration

go 1.25.0
