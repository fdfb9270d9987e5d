package record

import (
	"errors"
	"sync"
	"testing"
)

func TestAckGroupFiresAfterAllChildrenAndSeal(t *testing.T) {
	var got []error
	g := NewAckGroup(func(err error) { got = append(got, err) })
	a, b := g.Add(), g.Add()
	a(nil)
	g.Seal()
	if len(got) != 0 {
		t.Fatalf("parent fired before every child: %v", got)
	}
	b(nil)
	if len(got) != 1 || got[0] != nil {
		t.Fatalf("parent acks = %v, want one nil", got)
	}
	b(errors.New("late"))
	if len(got) != 1 {
		t.Fatalf("a child firing twice fired the parent again: %v", got)
	}
}

func TestAckGroupFirstErrorWins(t *testing.T) {
	first, second := errors.New("first"), errors.New("second")
	var got error
	calls := 0
	g := NewAckGroup(func(err error) { got = err; calls++ })
	a, b, c := g.Add(), g.Add(), g.Add()
	g.Seal()
	a(first)
	b(second)
	c(nil)
	if calls != 1 || !errors.Is(got, first) {
		t.Fatalf("parent got %v after %d calls, want %v once", got, calls, first)
	}
}

func TestAckGroupEmptyFiresOnSeal(t *testing.T) {
	calls := 0
	g := NewAckGroup(func(err error) {
		if err != nil {
			t.Errorf("err = %v", err)
		}
		calls++
	})
	g.Seal()
	if calls != 1 {
		t.Fatalf("calls = %d, want 1 (a filtered batch counts as delivered)", calls)
	}
}

func TestAckGroupNested(t *testing.T) {
	var got error
	fired := 0
	root := NewAckGroup(func(err error) { got = err; fired++ })
	child := NewAckGroup(root.Add())
	leaf1, leaf2 := child.Add(), child.Add()
	child.Seal()
	other := root.Add()
	root.Seal()
	leaf1(nil)
	other(nil)
	if fired != 0 {
		t.Fatal("root fired with a grandchild pending")
	}
	boom := errors.New("boom")
	leaf2(boom)
	if fired != 1 || !errors.Is(got, boom) {
		t.Fatalf("root fired %d times with %v", fired, got)
	}
}

func TestAckGroupConcurrent(t *testing.T) {
	done := make(chan error, 1)
	g := NewAckGroup(func(err error) { done <- err })
	acks := make([]AckFunc, 1000)
	for i := range acks {
		acks[i] = g.Add()
	}
	g.Seal()
	var wg sync.WaitGroup
	for _, a := range acks {
		wg.Add(1)
		go func() { defer wg.Done(); a(nil) }()
	}
	wg.Wait()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestObjectStem(t *testing.T) {
	tests := []struct {
		give Position
		want string
	}{
		{Position{Partition: "test/data/app.ndjson", Offset: 42}, "src+test_data_app.ndjson+000000000042"},
		{Position{Partition: "shardId-000000000001", Token: "4959"}, "src+shardId-000000000001+4959"},
		{Position{Partition: "app-logs/3", Offset: 7, Sub: "/2/0"}, "src+app-logs_3+000000000007+2.0"},
	}
	for _, tt := range tests {
		if got := tt.give.ObjectStem("src"); got != tt.want {
			t.Errorf("ObjectStem(%+v) = %q, want %q", tt.give, got, tt.want)
		}
	}
}

func TestSealWithFailsTheGroup(t *testing.T) {
	var got error
	fired := 0
	g := NewAckGroup(func(err error) { got = err; fired++ })
	child := g.Add()
	g.SealWith(errors.New("sink refused"))
	if fired != 0 {
		t.Fatal("fired before its child")
	}
	child(nil)
	if fired != 1 || got == nil || got.Error() != "sink refused" {
		t.Errorf("fired %d times with %v", fired, got)
	}
}
