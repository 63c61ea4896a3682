package httpstatus

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// The charts' size, in CSS pixels: the plot and the margin left for the axis labels.
const (
	chartW, chartH = 640, 120
	chartLeft      = 56
	chartBottom    = 18
)

// memoryChart draws a process's memory over the history as SVG, with its warning level
// and limit as dashed lines.
func memoryChart(samples []sample, warn, limit uint64) template.HTML {
	var ys []float64
	for _, s := range samples {
		if s.Memory == 0 {
			ys = append(ys, -1)
		} else {
			ys = append(ys, float64(s.Memory)/(1<<20))
		}
	}
	var levels []level
	if warn > 0 {
		levels = append(levels, level{"warn", float64(warn) / (1 << 20), "#d68a00"})
	}
	if limit > 0 {
		levels = append(levels, level{"limit", float64(limit) / (1 << 20), "#c33"})
	}
	return chart("memory", "MB", samples, ys, levels, "#1a5fb4")
}

// cpuChart draws a process's CPU over the history as SVG.
func cpuChart(samples []sample) template.HTML {
	ys := make([]float64, len(samples))
	for i, s := range samples {
		ys[i] = s.CPU
	}
	return chart("cpu", "% CPU", samples, ys, nil, "#2a7")
}

// level is a horizontal line across a chart.
type level struct {
	name  string
	value float64
	color string
}

// chart draws ys (negative: not measured, a gap) against the samples' times. The y axis
// runs from 0 to the highest value or level; the x axis over the samples' span.
func chart(id, unit string, samples []sample, ys []float64, levels []level, color string) template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="chart-%s" class="chart" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="%s over time">`,
		id, chartLeft+chartW+8, chartH+chartBottom+8, chartLeft+chartW+8, chartH+chartBottom+8, id)
	fmt.Fprintf(&b, `<rect x="%d" y="4" width="%d" height="%d" fill="#fafafa" stroke="#ddd"/>`, chartLeft, chartW, chartH)
	top := 0.0
	for _, y := range ys {
		top = max(top, y)
	}
	for _, l := range levels {
		top = max(top, l.value)
	}
	if len(samples) < 2 || top <= 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#666">not measured yet</text></svg>`, chartLeft+12, chartH/2+8)
		return template.HTML(b.String())
	}
	top *= 1.1
	t0, t1 := samples[0].Time, samples[len(samples)-1].Time
	span := max(t1.Sub(t0), time.Second)
	x := func(t time.Time) float64 { return chartLeft + float64(chartW)*float64(t.Sub(t0))/float64(span) }
	y := func(v float64) float64 { return 4 + float64(chartH)*(1-v/top) }
	fmt.Fprintf(&b, `<text x="%d" y="14" font-size="11" text-anchor="end" fill="#666">%.1f</text>`, chartLeft-4, top)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#666">0 %s</text>`, chartLeft-4, chartH+4, unit)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" fill="#666">%s</text>`, chartLeft, chartH+chartBottom+2, t0.Format(time.TimeOnly))
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="11" text-anchor="end" fill="#666">%s</text>`, chartLeft+chartW, chartH+chartBottom+2, t1.Format(time.TimeOnly))
	for _, l := range levels {
		fmt.Fprintf(&b, `<line class="level-%s" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="4 3"/>`,
			l.name, chartLeft, chartLeft+chartW, y(l.value), y(l.value), l.color)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="11" fill="%s">%s %.0f</text>`, chartLeft+4, y(l.value)-3, l.color, l.name, l.value)
	}
	// One polyline per run of measured samples.
	var pts []string
	flush := func() {
		if len(pts) > 0 {
			fmt.Fprintf(&b, `<polyline class="series" fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, color, strings.Join(pts, " "))
		}
		pts = pts[:0]
	}
	for i, v := range ys {
		if v < 0 {
			flush()
			continue
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(samples[i].Time), y(v)))
	}
	flush()
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
