package launcher

import (
	"context"
	"errors"
	"fmt"
)

// probes check a mode's prerequisites; each returns nil when the mode can run, else an error
// that says what is missing. They are variables of selectMode so unit tests can fake them.
type probes struct {
	docker func(ctx context.Context, image string) error
	local  func() error
}

var systemProbes = probes{docker: dockerAvailable, local: localAvailable}

// Install hints, in ErrNoZooKeeper's message.
const (
	hintLocal  = "apt-get install zookeeper (Debian's jars and a JRE for local mode)"
	hintDocker = "a running docker engine with the image (scripts/prepare.sh starts dockerd and builds it from docker/zookeeper)"
)

// selectMode resolves o.Mode (defaults applied) to the mode Start uses. An explicit docker or
// local mode whose prerequisites are missing is an error wrapping ErrUnavailable.
func selectMode(ctx context.Context, o Options, p probes) (Mode, error) {
	switch o.Mode {
	case ModeExisting:
		return ModeExisting, nil
	case ModeDocker:
		if err := p.docker(ctx, o.Image); err != nil {
			return "", fmt.Errorf("%w: docker: %w; needs %s", ErrUnavailable, err, hintDocker)
		}
		return ModeDocker, nil
	case ModeLocal:
		if err := p.local(); err != nil {
			return "", fmt.Errorf("%w: local: %w; needs %s", ErrUnavailable, err, hintLocal)
		}
		return ModeLocal, nil
	}
	if len(o.Servers) > 0 {
		return ModeExisting, nil
	}
	dockerErr := p.docker(ctx, o.Image)
	if dockerErr == nil {
		return ModeDocker, nil
	}
	localErr := p.local()
	if localErr == nil {
		return ModeLocal, nil
	}
	return "", fmt.Errorf("%w: docker: %v; local: %v. Install one: %s; or %s; or pass Servers of a running ensemble",
		ErrNoZooKeeper, dockerErr, localErr, hintLocal, hintDocker)
}

// errMissing marks a missing prerequisite in the probes' errors.
var errMissing = errors.New("missing")
