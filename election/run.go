package election

import (
	"context"
	"errors"
)

// Run takes part in the election and calls fn each time this candidate
// leads, holding the leadership while fn runs; when fn returns it gives the
// leadership up and queues again at the end of the line, until ctx ends:
// Apache Curator's LeaderSelector with autoRequeue. So leadership rotates
// among candidates that all use Run.
//
// fn's ctx is cancelled when the leadership ends (see Term.Ctx) or ctx ends;
// fn should return soon after. An error fn returns while still leading ends
// Run with that error; one it returns after its leadership was lost is
// taken as the end of that term, and Run queues on. Run leaves the election
// (Resign) before it returns, with ctx's error when ctx ended, with
// ErrResigned when Resign was called meanwhile, ErrClosed after Close.
//
// Use either Run or Join/Campaign/Resign on a Candidate, not both at once.
func (c *Candidate) Run(ctx context.Context, fn func(ctx context.Context, t Term) error) error {
	for {
		t, err := c.Campaign(ctx)
		if err == nil {
			err = ctx.Err() // won as ctx ended: do not start a term
		}
		if err != nil {
			return c.leave(ctx, err)
		}
		tctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(t.Ctx, cancel)
		ferr := fn(tctx, t)
		stop()
		cancel()
		switch lost := t.Ctx.Err() != nil; {
		case ctx.Err() != nil:
			return c.leave(ctx, ctx.Err())
		case ferr != nil && !lost:
			return c.leave(ctx, ferr)
		case ferr != nil:
			c.log.Info("leader function returned after its term ended", "epoch", t.Epoch, "err", ferr)
		case !lost:
			// Done with this term: give the leadership up, then queue again
			// (Campaign joins anew, behind everyone else).
			if err := c.Resign(context.WithoutCancel(ctx)); err != nil && !errors.Is(err, ErrClosed) {
				c.log.Warn("giving the leadership up", "err", err)
			}
		}
	}
}

// leave resigns, as Run ends with err, unless the candidate is closed.
func (c *Candidate) leave(ctx context.Context, err error) error {
	if errors.Is(err, ErrClosed) {
		return err
	}
	if rerr := c.Resign(context.WithoutCancel(ctx)); rerr != nil && !errors.Is(rerr, ErrClosed) {
		c.log.Warn("leaving the election", "err", rerr)
	}
	return err
}
