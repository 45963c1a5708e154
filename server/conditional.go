package server

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/zkv-dev/zkv/kvstore"
)

// Headers of conditional writes (RFC 9110 §13.1) and of a write's position.
const (
	// HeaderIfMatch on PUT, DELETE or /update: apply the write only while the key's version
	// is one of those listed ("3" or 3; "*": the key exists), else 412.
	HeaderIfMatch = "If-Match"
	// HeaderIfNoneMatch "*": apply the write only while the key does not exist (create
	// only); a list of versions: only while the key's version is none of them.
	HeaderIfNoneMatch = "If-None-Match"
	// HeaderETag carries a key's version, quoted ("3"), on reads, writes and 412s.
	HeaderETag = "ETag"
	// HeaderWriteIndex and HeaderWriteEpoch give the position (index, epoch) the leader
	// logged a write at: on its 200, and on a 504 whose write may have applied.
	HeaderWriteIndex = "X-Zkv-Write-Index"
	HeaderWriteEpoch = "X-Zkv-Write-Epoch"
)

// maxPreconditionVersions bounds the versions one If-Match or If-None-Match may list.
const maxPreconditionVersions = 64

// precondition is the parsed If-Match and If-None-Match of a write. It is evaluated by the
// leader under its write lock against the key's newest logged entry (see leaderWrite), so
// the state it checks is the one the write will apply on.
type precondition struct {
	match        bool // If-Match given
	matchAny     bool // If-Match: *
	matchV       []uint64
	noneMatch    bool // If-None-Match given
	noneMatchAny bool // If-None-Match: *
	noneMatchV   []uint64
}

// parsePrecondition reads the conditional headers of r; a malformed one is a 400.
func parsePrecondition(h http.Header) (precondition, error) {
	var p precondition
	var err error
	if vs := h.Values(HeaderIfMatch); len(vs) > 0 {
		p.match = true
		if p.matchAny, p.matchV, err = parseVersions(HeaderIfMatch, vs); err != nil {
			return p, err
		}
	}
	if vs := h.Values(HeaderIfNoneMatch); len(vs) > 0 {
		p.noneMatch = true
		if p.noneMatchAny, p.noneMatchV, err = parseVersions(HeaderIfNoneMatch, vs); err != nil {
			return p, err
		}
	}
	return p, nil
}

// parseVersions parses "*" or a comma-separated list of versions, each bare (3) or an
// entity tag ("3"). Weak tags (W/"3") are refused: a version compares strongly.
func parseVersions(name string, values []string) (star bool, versions []uint64, err error) {
	for _, v := range values {
		for _, f := range strings.Split(v, ",") {
			f = strings.TrimSpace(f)
			switch {
			case f == "":
				continue
			case f == "*":
				star = true
				continue
			case strings.HasPrefix(f, "W/"):
				return false, nil, badRequest(CodeBadRequest, "%s: weak entity tag %q: versions compare strongly; send %s", name, f, strings.TrimPrefix(f, "W/"))
			}
			if len(f) >= 2 && f[0] == '"' && f[len(f)-1] == '"' {
				f = f[1 : len(f)-1]
			}
			n, perr := strconv.ParseUint(f, 10, 64)
			if perr != nil || n == 0 {
				return false, nil, badRequest(CodeBadRequest,
					`%s: %q is not a version (a positive integer, bare or quoted, or *); a key that does not exist has no version: use If-None-Match: *`,
					name, f)
			}
			if len(versions) == maxPreconditionVersions {
				return false, nil, badRequest(CodeBadRequest, "%s lists more than %d versions", name, maxPreconditionVersions)
			}
			versions = append(versions, n)
		}
	}
	if !star && len(versions) == 0 {
		return false, nil, badRequest(CodeBadRequest, "%s is empty: give a version or *", name)
	}
	if star && len(versions) > 0 {
		return false, nil, badRequest(CodeBadRequest, "%s mixes * with versions", name)
	}
	return star, versions, nil
}

// check evaluates the precondition against old, the key's newest entry (logged or applied;
// zero when the key was never written). A tombstone is a key that does not exist.
func (p precondition) check(key string, old kvstore.Entry) error {
	exists := old.Key != "" && !old.Deleted
	var current uint64
	if exists {
		current = old.Version
	}
	if p.match {
		ok := exists && (p.matchAny || containsVersion(p.matchV, current))
		if !ok {
			return preconditionFailed(key, current, exists, "If-Match")
		}
	}
	if p.noneMatch {
		if exists && (p.noneMatchAny || containsVersion(p.noneMatchV, current)) {
			return preconditionFailed(key, current, exists, "If-None-Match")
		}
	}
	return nil
}

func containsVersion(vs []uint64, v uint64) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

func preconditionFailed(key string, current uint64, exists bool, header string) *apiError {
	state := "does not exist"
	if exists {
		state = "is at version " + strconv.FormatUint(current, 10)
	}
	e := newAPIError(http.StatusPreconditionFailed, CodePreconditionFailed, "%s failed: key %q %s; nothing changed",
		header, shortKey(key), state)
	e.version = &current
	if exists {
		e.header = map[string]string{HeaderETag: etag(current)}
	}
	return e
}

// etag is a version as an entity tag.
func etag(version uint64) string { return `"` + strconv.FormatUint(version, 10) + `"` }
