package electiontest_test

import (
	"errors"
	"testing"

	"github.com/zkv-dev/zkv/election"
	"github.com/zkv-dev/zkv/election/electiontest"
)

type fixedView struct{ v *election.View }

func (f fixedView) View() election.View { return *f.v }

func TestCheckerReportsViolations(t *testing.T) {
	a, b := &election.View{}, &election.View{}
	k := electiontest.NewChecker()
	k.Add("a", fixedView{a})
	k.Add("b", fixedView{b})

	*a = election.View{IsLeader: true, Epoch: 5}
	if err := k.Check(); err != nil {
		t.Fatal(err)
	}
	*a = election.View{}
	*b = election.View{IsLeader: true, Epoch: 3} // a newer leadership in an older epoch
	if err := k.Check(); !errors.Is(err, electiontest.ErrViolation) {
		t.Fatalf("epoch going back: %v", err)
	}

	k = electiontest.NewChecker()
	k.Add("a", fixedView{a})
	k.Add("b", fixedView{b})
	*a = election.View{IsLeader: true, Epoch: 7}
	*b = election.View{IsLeader: true, Epoch: 8}
	if err := k.Check(); !errors.Is(err, electiontest.ErrViolation) {
		t.Fatalf("two leaders: %v", err)
	}
	if got := k.Leaderships(); len(got) != 2 {
		t.Fatalf("leaderships %+v", got)
	}
}
