package replication

import (
	"errors"
	"fmt"
	"testing"
)

// The HTTPTransport maps an error answer back to the error the replica's Follower returned:
// ErrorStatus and refusal are inverses on the protocol's errors.
func TestHTTPRefusalRoundTrip(t *testing.T) {
	for _, err := range []error{
		&StaleEpochError{Epoch: 7, Got: 3},
		&LogMismatchError{LastIndex: 12, LastEpoch: 2},
		fmt.Errorf("%w: one, not two", ErrNewIncarnation),
		fmt.Errorf("%w: x", ErrNotLeader),
		fmt.Errorf("%w: y", ErrInvalidRequest),
		fmt.Errorf("%w: z", ErrTooLarge),
	} {
		status, body := ErrorStatus(err)
		got := refusal("r:1", status, body, 3)
		switch want := err.(type) {
		case *StaleEpochError:
			var stale *StaleEpochError
			if !errors.As(got, &stale) || *stale != *want {
				t.Errorf("%v: got %v", err, got)
			}
		case *LogMismatchError:
			var mismatch *LogMismatchError
			if !errors.As(got, &mismatch) || *mismatch != *want {
				t.Errorf("%v: got %v", err, got)
			}
		default:
			if !errors.Is(got, errors.Unwrap(err)) {
				t.Errorf("%v: got %v, which is not %v", err, got, errors.Unwrap(err))
			}
		}
	}
	if got := refusal("r:1", 503, ErrorResponse{Error: ErrorDetail{Code: "unavailable", Message: "later"}}, 1); got.Unwrap() != nil ||
		got.Error() != "replication: replica r:1 answered 503 unavailable: later" {
		t.Errorf("503: %v (unwraps to %v)", got, got.Unwrap())
	}
}
