package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// sample is the durations of repeated runs of one measurement.
type sample []time.Duration

// median is the middle value (the mean of the two middle ones for an even
// count); 0 for an empty sample.
func (s sample) median() time.Duration {
	if len(s) == 0 {
		return 0
	}
	v := slices.Sorted(slices.Values(s))
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// p90 is the nearest-rank 90th percentile; 0 for an empty sample.
func (s sample) p90() time.Duration {
	if len(s) == 0 {
		return 0
	}
	v := slices.Sorted(slices.Values(s))
	rank := (len(v)*90 + 99) / 100 // ceil(0.9 n), 1-based
	return v[rank-1]
}

// ratio is a's median over b's, the figure the README compares by.
func ratio(a, b sample) float64 {
	if b.median() == 0 {
		return 0
	}
	return float64(a.median()) / float64(b.median())
}

// ms formats a duration in milliseconds, the unit of every start figure.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// table renders the same rows as aligned text for stdout and as markdown
// for the README.
type table struct {
	header []string
	rows   [][]string
}

func newTable(header ...string) *table { return &table{header: header} }

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
	fmt.Fprintln(w)
}

func (t *table) markdown() string {
	var b strings.Builder
	line := func(cells []string) { b.WriteString("| " + strings.Join(cells, " | ") + " |\n") }
	line(t.header)
	sep := make([]string, len(t.header))
	for i := range sep {
		sep[i] = "---"
	}
	line(sep)
	for _, r := range t.rows {
		line(r)
	}
	return b.String()
}
