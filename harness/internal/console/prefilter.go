package console

// prefilter finds which rule needles occur in a line in one pass. It is an
// Aho-Corasick automaton compiled to a full DFA: one table load per input
// byte, instead of one bytes.Index per needle (which rescans the line for
// every needle and restarts on each frequent first letter like 'o').
type prefilter struct {
	// next[state<<8|byte] is the next state; fewer than 256 states, so
	// a state fits a byte and out needs no bounds check.
	next []uint8
	out  [256]uint32 // state -> mask of needles ending here
	// overlap is the longest needle minus one: how far a match can
	// straddle a split point.
	overlap int
}

func newPrefilter(needles [][]byte) *prefilter {
	const none = -1
	var trie [][256]int
	var out []uint32
	newState := func() int {
		var row [256]int
		for i := range row {
			row[i] = none
		}
		trie = append(trie, row)
		out = append(out, 0)
		return len(trie) - 1
	}
	newState() // root
	for i, n := range needles {
		s := 0
		for _, c := range n {
			if trie[s][c] == none {
				t := newState()
				trie[s][c] = t
			}
			s = trie[s][c]
		}
		out[s] |= 1 << i
	}
	if len(trie) > 256 {
		panic("console: needles too long for the prefilter")
	}
	// Breadth-first: complete each state's row with the transitions of
	// its failure state, which is already complete.
	fail := make([]int, len(trie))
	var queue []int
	for c := range 256 {
		if t := trie[0][c]; t != none {
			queue = append(queue, t)
		} else {
			trie[0][c] = 0
		}
	}
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		for c := range 256 {
			t := trie[r][c]
			if t == none {
				trie[r][c] = trie[fail[r]][c]
				continue
			}
			if r != 0 {
				fail[t] = trie[fail[r]][c]
			}
			out[t] |= out[fail[t]]
			queue = append(queue, t)
		}
	}
	pf := &prefilter{next: make([]uint8, len(trie)<<8)}
	for _, n := range needles {
		pf.overlap = max(pf.overlap, len(n)-1)
	}
	copy(pf.out[:], out)
	for s := range trie {
		for c := range 256 {
			pf.next[s<<8|c] = uint8(trie[s][c])
		}
	}
	return pf
}

// match returns the mask of needles that occur in b.
//
// Each step of a DFA waits for the previous one (a dependent load), so one
// walk leaves most of the CPU idle. Longer lines are cut in two halves,
// the first extended by overlap bytes so that no match across the cut is
// lost, and both walks run interleaved.
func (pf *prefilter) match(b []byte) uint32 {
	next, out := pf.next, &pf.out
	var s1, s2 uint8
	var mask uint32
	if len(b) >= 4*pf.overlap {
		mid := len(b) / 2
		first, second := b[:mid+pf.overlap], b[mid:]
		n := min(len(first), len(second))
		for i := 0; i < n; i++ {
			s1 = next[int(s1)<<8|int(first[i])]
			s2 = next[int(s2)<<8|int(second[i])]
			mask |= out[s1] | out[s2]
		}
		for _, c := range first[n:] {
			s1 = next[int(s1)<<8|int(c)]
			mask |= out[s1]
		}
		b = second[n:]
	}
	for _, c := range b {
		s2 = next[int(s2)<<8|int(c)]
		mask |= out[s2]
	}
	return mask
}
