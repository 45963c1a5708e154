module example.com/zkv-consumer

go 1.25.0

// The version is the one consumer_test.go packs election at; no replace: this module fetches
// election and what election requires from a module proxy, as any user does.
require github.com/zkv-dev/zkv/election v0.1.0
