package vm

import "testing"

// Two guests started side by side must not be given the same SSH port,
// even when the kernel hands the same free port to both freePort calls.
func TestHoldPortSkipsHeld(t *testing.T) {
	seq := []int{40001, 40001, 40001, 40002}
	pick := func() (int, error) {
		p := seq[0]
		seq = seq[1:]
		return p, nil
	}
	a, err := holdPort(pick)
	if err != nil || a != 40001 {
		t.Fatalf("first: %d %v", a, err)
	}
	b, err := holdPort(pick)
	if err != nil || b != 40002 {
		t.Fatalf("second: %d %v, want 40002 (40001 is held)", b, err)
	}
	releasePort(a)
	releasePort(b)
	seq = []int{40001}
	if c, err := holdPort(pick); err != nil || c != 40001 {
		t.Errorf("after release: %d %v", c, err)
	}
	releasePort(40001)
}

func TestHoldPortGivesUp(t *testing.T) {
	portsHeld[40003] = true
	defer releasePort(40003)
	if _, err := holdPort(func() (int, error) { return 40003, nil }); err == nil {
		t.Error("a held port handed out again")
	}
}

// freePort holds what it returns until the guest releases it.
func TestFreePortHolds(t *testing.T) {
	a, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	defer releasePort(a)
	if !portsHeld[a] {
		t.Errorf("port %d not held", a)
	}
}
