module github.com/zkv-dev/zkv/driver

go 1.25.0
