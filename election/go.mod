module github.com/zkv-dev/zkv/election

go 1.25.0
