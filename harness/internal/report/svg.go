package report

// Hand-made SVG plots for the HTML report: a strip plot of a latency
// distribution per variant (median and its CI marked) and a timeline of
// one guest run (MemAvailable, PSI memory full, console events, rounds).
// Every number is printed with a fixed precision and nothing iterates a
// map, so two renders of one run are byte-identical.

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"

	"oomlab/harness/internal/console"
	"oomlab/harness/internal/metrics"
)

// palette: colour-blind safe (Okabe-Ito); every mark also has a shape,
// dash or letter, so no meaning rests on colour alone.
var palette = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"}

func esc(s string) string { return html.EscapeString(s) }

// f1 prints a coordinate.
func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// scale maps data to pixels, linear or log10.
type scale struct {
	lo, hi     float64 // data
	p0, p1     float64 // pixels
	log        bool
	tickValues []float64
}

func (s scale) at(v float64) float64 {
	lo, hi := s.lo, s.hi
	if s.log {
		v, lo, hi = math.Log10(math.Max(v, s.lo)), math.Log10(lo), math.Log10(hi)
	}
	if hi == lo {
		return (s.p0 + s.p1) / 2
	}
	return s.p0 + (v-lo)/(hi-lo)*(s.p1-s.p0)
}

// niceTicks are about n round ticks (1, 2, 5 x 10^k) covering [lo, hi];
// lo and hi are widened to the outer ticks.
func niceTicks(lo, hi float64, n int) (float64, float64, []float64) {
	if hi <= lo {
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			step = m * mag
			break
		}
	}
	lo, hi = math.Floor(lo/step)*step, math.Ceil(hi/step)*step
	var t []float64
	for v := lo; v <= hi+step/2; v += step {
		t = append(t, math.Round(v/step)*step)
	}
	return lo, hi, t
}

// logTicks are 1, 2, 5 x 10^k between lo and hi, widened to decades.
func logTicks(lo, hi float64) (float64, float64, []float64) {
	lo, hi = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
	var t []float64
	for d := lo; d < hi*1.01; d *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if v := d * m; v <= hi*1.01 {
				t = append(t, v)
			}
		}
	}
	return lo, hi, t
}

func tickLabel(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1e9 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// stripGroup is one variant's samples of a latency figure.
type stripGroup struct {
	Variant string
	Values  []float64
	Stats   metrics.DistStats
}

// stripPlot draws one row per variant: every sample as a dot (jittered
// up and down, deterministically) in the upper part of the row, and
// under the dots the 95% bootstrap CI of the median as a band with end
// caps and the median as a black bar (a thin line of it runs up through
// the dots). A log axis when the samples span
// more than a factor of 10, so 50 ms and 2000 ms are both readable.
func stripPlot(b *strings.Builder, id, title, unit string, groups []stripGroup) {
	const w, left, right, top, rowH, bottom = 1180.0, 250.0, 30.0, 36.0, 64.0, 46.0
	h := top + rowH*float64(len(groups)) + bottom
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, g := range groups {
		for _, v := range g.Values {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		if g.Stats.P50 != nil && g.Stats.P50.CI != nil {
			lo, hi = math.Min(lo, g.Stats.P50.CI[0]), math.Max(hi, g.Stats.P50.CI[1])
		}
	}
	sc := scale{p0: left, p1: w - right}
	if lo > 0 && hi/lo > 10 {
		sc.log = true
		sc.lo, sc.hi, sc.tickValues = logTicks(lo, hi)
	} else {
		sc.lo, sc.hi, sc.tickValues = niceTicks(math.Min(0, lo), hi, 8)
	}
	axis := "linear axis"
	if sc.log {
		axis = "log axis"
	}
	fmt.Fprintf(b, `<svg class="plot strip" id="%s" data-figure="%s" role="img" aria-labelledby="%s-t" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f">`+"\n",
		esc(id), esc(title), esc(id), w, h, w, h)
	fmt.Fprintf(b, `<title id="%s-t">%s (%s) per variant: every sample a dot, the median a bar, its 95%% CI a band; %s</title>`+"\n", esc(id), esc(title), esc(unit), axis)
	fmt.Fprintf(b, `<text x="%s" y="22" class="ptitle">%s, %s (%s)</text>`+"\n", f1(left), esc(title), esc(unit), axis)
	bot := top + rowH*float64(len(groups))
	// grid and axis
	for _, t := range sc.tickValues {
		x := sc.at(t)
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" class="grid"/>`, f1(x), f1(top), f1(x), f1(bot))
		fmt.Fprintf(b, `<text x="%s" y="%s" class="tick" text-anchor="middle">%s</text>`+"\n", f1(x), f1(bot+16), tickLabel(t))
	}
	fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" class="axis"/>`+"\n", f1(left), f1(bot), f1(w-right), f1(bot))
	fmt.Fprintf(b, `<text x="%s" y="%s" class="tick" text-anchor="middle">%s</text>`+"\n", f1((left+w-right)/2), f1(bot+36), esc(unit))
	for i, g := range groups {
		col := palette[i%len(palette)]
		cy := top + rowH*float64(i) + rowH/2
		if i%2 == 1 {
			fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" class="band"/>`+"\n", f1(left), f1(cy-rowH/2), f1(w-right-left), f1(rowH))
		}
		fmt.Fprintf(b, `<text x="%s" y="%s" class="vlabel" text-anchor="end">%s (N=%d)</text>`+"\n", f1(left-10), f1(cy-4), esc(g.Variant), len(g.Values))
		med := "no samples"
		if p := g.Stats.P50; p != nil {
			med = "p50 " + p.String()
			if p.CI == nil {
				med += " (no CI: N<" + strconv.Itoa(metrics.MinSamples) + ")"
			}
		}
		fmt.Fprintf(b, `<text x="%s" y="%s" class="tick" text-anchor="end">%s</text>`+"\n", f1(left-10), f1(cy+12), esc(med))
		if p := g.Stats.P50; p != nil && p.CI != nil {
			x0, x1 := sc.at(p.CI[0]), sc.at(p.CI[1])
			fmt.Fprintf(b, `<g class="ci"><title>%s: median %s, 95%% CI [%s, %s] %s</title><rect x="%s" y="%s" width="%s" height="10" fill="%s" fill-opacity="0.25"/><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s"/></g>`+"\n",
				esc(g.Variant), metrics.Num(p.Value), metrics.Num(p.CI[0]), metrics.Num(p.CI[1]), esc(unit),
				f1(x0), f1(cy+12), f1(math.Max(x1-x0, 1)), col, f1(x0), f1(cy+8), f1(x0), f1(cy+26), col, f1(x1), f1(cy+8), f1(x1), f1(cy+26), col)
		}
		if p := g.Stats.P50; p != nil {
			x := sc.at(p.Value)
			fmt.Fprintf(b, `<g><title>%s: median %s %s</title><line x1="%s" y1="%s" x2="%s" y2="%s" class="medthin"/><line x1="%s" y1="%s" x2="%s" y2="%s" class="median"/></g>`+"\n",
				esc(g.Variant), metrics.Num(p.Value), esc(unit), f1(x), f1(cy-24), f1(x), f1(cy+6), f1(x), f1(cy+6), f1(x), f1(cy+30))
		}
		for j, v := range g.Values {
			jit := float64((j*7)%9-4)*2.5 - 10 // -20 .. 0, the same every render
			fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="5" fill="%s" fill-opacity="0.8" stroke="#fff" stroke-width="0.8"><title>%s: %s %s</title></circle>`+"\n",
				f1(sc.at(v)), f1(cy+jit), col, esc(g.Variant), metrics.Num(v), esc(unit))
		}
	}
	b.WriteString("</svg>\n")
}

// timeSample is one metrics sample on the console's time axis.
type timeSample struct {
	T        float64 // seconds, console (printk) time
	AvailMB  float64
	FullPct  float64 // PSI memory full: share of the interval since the previous sample
	HasFull  bool
	MemTotal float64
}

// timeEvent is one console event to mark on a timeline.
type timeEvent struct {
	T    float64
	Kind console.Kind
	Text string
}

// span is a shaded interval (a round, or the stress phase).
type span struct {
	From, To float64
	Label    string
}

// marker styles of the event kinds a timeline shows: letter, colour, dash.
type markStyle struct {
	Letter, Color, Dash, Name string
	Width                     float64
}

var markStyles = []struct {
	Kind console.Kind
	markStyle
}{
	{console.StressStart, markStyle{"S", "#555555", "2 3", "stress start", 1}},
	{console.OOMInvoked, markStyle{"O", "#E69F00", "5 3", "OOM invoked", 1.2}},
	{console.OOMKill, markStyle{"K", "#D55E00", "", "OOM kill", 1.6}},
	{console.OOMReaped, markStyle{"R", "#009E73", "", "reaped", 1.6}},
	{console.OOMReapFailed, markStyle{"F", "#7F0000", "1 2", "reap failed", 1.6}},
	{console.HandedOver, markStyle{"H", "#0072B2", "6 2 1 2", "handed over", 1.6}},
	{console.TaskExit, markStyle{"x", "#999999", "1 3", "victim exit", 1}},
	{console.SoftLockup, markStyle{"L", "#8B00A0", "", "lockup", 3}},
	{console.HardLockup, markStyle{"L", "#8B00A0", "", "lockup", 3}},
	{console.RCUStall, markStyle{"L", "#8B00A0", "", "lockup", 3}},
	{console.HungTask, markStyle{"L", "#8B00A0", "", "lockup", 3}},
	{console.Panic, markStyle{"P", "#000000", "", "panic", 3}},
}

func styleOf(k console.Kind) (markStyle, bool) {
	for _, s := range markStyles {
		if s.Kind == k {
			return s.markStyle, true
		}
	}
	return markStyle{}, false
}

// timeline draws one guest run: MemAvailable (MB, left axis, solid),
// PSI memory full (% of each sample interval, right axis, dashed), a
// vertical line with a letter per console event, and the rounds shaded.
func timeline(b *strings.Builder, id, title string, samples []timeSample, events []timeEvent, spans []span) {
	const w, h, left, right, top, bottom = 1180.0, 350.0, 70.0, 64.0, 76.0, 46.0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range samples {
		lo, hi = math.Min(lo, s.T), math.Max(hi, s.T)
	}
	var shown []timeEvent
	for _, e := range events {
		if _, ok := styleOf(e.Kind); ok {
			shown = append(shown, e)
			lo, hi = math.Min(lo, e.T), math.Max(hi, e.T)
		}
	}
	for _, s := range spans {
		lo, hi = math.Min(lo, s.From), math.Max(hi, s.To)
	}
	if math.IsInf(lo, 0) {
		// Nothing to draw: a short panel that says so.
		fmt.Fprintf(b, `<svg class="plot timeline empty" id="%s" role="img" aria-labelledby="%s-t" viewBox="0 0 %.0f 64" width="%.0f" height="64">`+"\n", esc(id), esc(id), w, w)
		fmt.Fprintf(b, `<title id="%s-t">%s: no metrics samples and no timed console events</title>`+"\n", esc(id), esc(title))
		fmt.Fprintf(b, `<text x="%s" y="24" class="ptitle">%s</text><text x="%s" y="48" class="tick">no metrics samples and no timed console events for this guest run</text>`+"\n</svg>\n", f1(left), esc(title), f1(left))
		return
	}
	xs := scale{p0: left, p1: w - right}
	xs.lo, xs.hi, xs.tickValues = niceTicks(math.Floor(lo), hi, 12)
	memMax := 0.0
	for _, s := range samples {
		memMax = math.Max(memMax, math.Max(s.MemTotal, s.AvailMB))
	}
	ys := scale{p0: h - bottom, p1: top}
	ys.lo, ys.hi, ys.tickValues = niceTicks(0, math.Max(memMax, 1), 5)
	ps := scale{lo: 0, hi: 100, p0: h - bottom, p1: top}
	bot, tp := h-bottom, top
	fmt.Fprintf(b, `<svg class="plot timeline" id="%s" role="img" aria-labelledby="%s-t" viewBox="0 0 %.0f %.0f" width="%.0f" height="%.0f">`+"\n",
		esc(id), esc(id), w, h, w, h)
	fmt.Fprintf(b, `<title id="%s-t">%s: MemAvailable and PSI memory full over console time, with OOM invocations, kills, reaps, handoffs, exits and lockups marked; rounds shaded</title>`+"\n", esc(id), esc(title))
	fmt.Fprintf(b, `<text x="%s" y="18" class="ptitle">%s</text>`+"\n", f1(left), esc(title))
	// legend
	lx, ly := left, 36.0
	legend := func(sample, label string) {
		fmt.Fprintf(b, `<g transform="translate(%s,%s)">%s<text x="30" y="4" class="tick">%s</text></g>`+"\n", f1(lx), f1(ly), sample, esc(label))
		lx += 30 + 6.6*float64(len(label)) + 18
	}
	legend(`<line x1="0" y1="0" x2="24" y2="0" stroke="#0072B2" stroke-width="2.5"/>`, "MemAvailable MB (left)")
	legend(`<line x1="0" y1="0" x2="24" y2="0" stroke="#D55E00" stroke-width="2" stroke-dasharray="6 3"/>`, "PSI memory full % (right)")
	lx, ly = left, 56
	seen := map[string]bool{}
	for _, s := range markStyles {
		if seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		legend(fmt.Sprintf(`<line x1="12" y1="-7" x2="12" y2="7" stroke="%s" stroke-width="%.1f" stroke-dasharray="%s"/><text x="0" y="4" class="mletter" fill="%s">%s</text>`, s.Color, s.Width, s.Dash, s.Color, s.Letter), s.Name)
	}
	for i, s := range spans {
		x0, x1 := xs.at(s.From), xs.at(s.To)
		cls := "round"
		if i%2 == 1 {
			cls = "round odd"
		}
		fmt.Fprintf(b, `<g class="%s"><title>%s: %.3f-%.3f s</title><rect x="%s" y="%s" width="%s" height="%s"/></g>`+"\n",
			cls, esc(s.Label), s.From, s.To, f1(x0), f1(tp), f1(math.Max(x1-x0, 1)), f1(bot-tp))
	}
	for _, t := range xs.tickValues {
		x := xs.at(t)
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" class="grid"/><text x="%s" y="%s" class="tick" text-anchor="middle">%s</text>`+"\n",
			f1(x), f1(tp), f1(x), f1(bot), f1(x), f1(bot+16), tickLabel(t))
	}
	for _, t := range ys.tickValues {
		y := ys.at(t)
		fmt.Fprintf(b, `<line x1="%s" y1="%s" x2="%s" y2="%s" class="grid"/><text x="%s" y="%s" class="tick" text-anchor="end">%s</text>`+"\n",
			f1(left), f1(y), f1(w-right), f1(y), f1(left-6), f1(y+4), tickLabel(t))
	}
	for _, t := range []float64{0, 25, 50, 75, 100} {
		fmt.Fprintf(b, `<text x="%s" y="%s" class="tick">%s%%</text>`+"\n", f1(w-right+6), f1(ps.at(t)+4), tickLabel(t))
	}
	fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" class="frame"/>`+"\n", f1(left), f1(tp), f1(w-right-left), f1(bot-tp))
	fmt.Fprintf(b, `<text x="%s" y="%s" class="tick" text-anchor="middle">console time, s since boot (printk timestamps; samples by CLOCK_MONOTONIC)</text>`+"\n", f1((left+w-right)/2), f1(h-8))
	fmt.Fprintf(b, `<text class="tick" transform="translate(16,%s) rotate(-90)" text-anchor="middle">MemAvailable, MB</text>`+"\n", f1((tp+bot)/2))
	if len(samples) > 0 {
		// A gap in the samples (the agent was not scheduled, or its
		// stream stalled) breaks the lines and is shaded, so no line
		// pretends to know what happened in it.
		gap := sampleGap(samples)
		var mem, psi []string
		flush := func() {
			if len(mem) > 1 {
				fmt.Fprintf(b, `<polyline class="mem" points="%s"><title>MemAvailable, MB</title></polyline>`+"\n", strings.Join(mem, " "))
			}
			if len(psi) > 1 {
				fmt.Fprintf(b, `<polyline class="psi" points="%s"><title>PSI memory full, %% of each sample interval</title></polyline>`+"\n", strings.Join(psi, " "))
			}
			mem, psi = mem[:0], psi[:0]
		}
		for i, s := range samples {
			if i > 0 && s.T-samples[i-1].T > gap {
				flush()
				x0, x1 := xs.at(samples[i-1].T), xs.at(s.T)
				fmt.Fprintf(b, `<g class="gap"><title>no metrics sample for %.2f s (%.3f-%.3f s)</title><rect x="%s" y="%s" width="%s" height="%s"/><text x="%s" y="%s" class="tick" text-anchor="middle">no samples</text></g>`+"\n",
					s.T-samples[i-1].T, samples[i-1].T, s.T, f1(x0), f1(tp), f1(x1-x0), f1(bot-tp), f1((x0+x1)/2), f1(bot-20))
			}
			mem = append(mem, f1(xs.at(s.T))+","+f1(ys.at(s.AvailMB)))
			if s.HasFull {
				psi = append(psi, f1(xs.at(s.T))+","+f1(ps.at(math.Min(100, s.FullPct))))
			}
		}
		flush()
		for _, s := range samples { // single samples between gaps stay visible
			fmt.Fprintf(b, `<circle cx="%s" cy="%s" r="1.8" class="memdot"/>`, f1(xs.at(s.T)), f1(ys.at(s.AvailMB)))
		}
		b.WriteString("\n")
	} else {
		fmt.Fprintf(b, `<text x="%s" y="%s" class="ptitle" text-anchor="middle">no metrics samples for this guest run</text>`+"\n", f1((left+w-right)/2), f1((tp+bot)/2))
	}
	for _, s := range spans { // labels over the lines and gaps
		fmt.Fprintf(b, `<text x="%s" y="%s" class="tick rlabel">%s</text>`+"\n", f1(xs.at(s.From)+4), f1(bot-6), esc(s.Label))
	}
	// Letters of events closer than 9 px share a row: they step down so
	// none hides another.
	lastX, row := math.Inf(-1), 0
	for _, e := range shown {
		st, _ := styleOf(e.Kind)
		x := xs.at(e.T)
		if x-lastX < 9 {
			row = (row + 1) % 6
		} else {
			row = 0
		}
		lastX = x
		fmt.Fprintf(b, `<g class="ev %s"><title>%.3f s %s: %s</title><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%.1f" stroke-dasharray="%s"/><text x="%s" y="%s" class="mletter" fill="%s" text-anchor="middle">%s</text></g>`+"\n",
			esc(string(e.Kind)), e.T, esc(st.Name), esc(e.Text), f1(x), f1(tp), f1(x), f1(bot), st.Color, st.Width, st.Dash,
			f1(x), f1(tp+12+11*float64(row)), st.Color, st.Letter)
	}
	b.WriteString("</svg>\n")
}

// sampleGap is the interval between two samples above which they are
// not joined: four times the median interval, at least 0.6 s.
func sampleGap(samples []timeSample) float64 {
	var dts []float64
	for i := 1; i < len(samples); i++ {
		dts = append(dts, samples[i].T-samples[i-1].T)
	}
	if len(dts) == 0 {
		return math.Inf(1)
	}
	return math.Max(0.6, 4*metrics.Quantile(dts, 0.5))
}
