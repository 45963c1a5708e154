package kvstore

import (
	"strings"
	"sync"
)

// notifier wakes the goroutines waiting for a key, or for any key under a prefix, to
// change. Waiters of one key (or prefix) share one channel, closed by the first write that
// touches it and then forgotten; the next waiter makes a new one. A waiter that gives up
// releases its share, and the last one out forgets the channel, so the maps hold only what
// someone waits for.
type notifier struct {
	mu       sync.Mutex
	keys     map[string]*waitSet
	prefixes map[string]*waitSet
}

type waitSet struct {
	ch   chan struct{}
	refs int
}

func (n *notifier) watch(m *map[string]*waitSet, name string) (<-chan struct{}, func()) {
	n.mu.Lock()
	if *m == nil {
		*m = make(map[string]*waitSet)
	}
	ws := (*m)[name]
	if ws == nil {
		ws = &waitSet{ch: make(chan struct{})}
		(*m)[name] = ws
	}
	ws.refs++
	n.mu.Unlock()
	var once sync.Once
	return ws.ch, func() {
		once.Do(func() {
			n.mu.Lock()
			defer n.mu.Unlock()
			if ws.refs--; ws.refs == 0 && (*m)[name] == ws {
				delete(*m, name)
			}
		})
	}
}

// fire wakes the waiters of each key and of every prefix of one of them.
func (n *notifier) fire(keys ...string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.keys) == 0 && len(n.prefixes) == 0 {
		return
	}
	for _, k := range keys {
		if ws := n.keys[k]; ws != nil {
			close(ws.ch)
			delete(n.keys, k)
		}
	}
	for p, ws := range n.prefixes {
		for _, k := range keys {
			if strings.HasPrefix(k, p) {
				close(ws.ch)
				delete(n.prefixes, p)
				break
			}
		}
	}
}

// fireAll wakes every waiter: the whole content was replaced.
func (n *notifier) fireAll() {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, ws := range n.keys {
		close(ws.ch)
		delete(n.keys, k)
	}
	for p, ws := range n.prefixes {
		close(ws.ch)
		delete(n.prefixes, p)
	}
}

// waiting counts the keys and prefixes someone waits for (tests).
func (n *notifier) waiting() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.keys) + len(n.prefixes)
}

// WatchKey returns a channel closed at the next write that touches key (a put, a delete,
// an applied entry for it, or a Restore), and a release function to call once done waiting
// (safe to call more than once). To wait without missing a write, take the channel first,
// then read the key, then wait: a write that lands between the two closes the channel.
// Closing is the only event: the channel carries no value and wakes every waiter of the key.
func (s *Store) WatchKey(key string) (<-chan struct{}, func()) {
	return s.watchers.watch(&s.watchers.keys, key)
}

// WatchPrefix is WatchKey for every key that starts with prefix (the empty prefix: every
// key).
func (s *Store) WatchPrefix(prefix string) (<-chan struct{}, func()) {
	return s.watchers.watch(&s.watchers.prefixes, prefix)
}
