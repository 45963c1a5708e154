package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// series is one line of a plot.
type series struct {
	Name   string
	Points plotter.XYs
}

// cdfSeries turns a sample of durations (in milliseconds on x) into a step CDF.
func cdfSeries(name string, d []time.Duration) series {
	s := slices.Clone(d)
	slices.Sort(s)
	pts := make(plotter.XYs, 0, 2*len(s))
	for i, v := range s {
		x := float64(v) / float64(time.Millisecond)
		pts = append(pts, plotter.XY{X: x, Y: float64(i) / float64(len(s))})
		pts = append(pts, plotter.XY{X: x, Y: float64(i+1) / float64(len(s))})
	}
	return series{Name: name, Points: pts}
}

// lineChart draws the series and saves it as base.png and base.svg in dir; it returns the
// file names written.
func lineChart(dir, base, title, xLabel, yLabel string, logX, logY bool, ss []series) ([]string, error) {
	var drawn []series
	for _, s := range ss {
		if len(s.Points) > 0 {
			drawn = append(drawn, s)
		}
	}
	if len(drawn) == 0 {
		return nil, nil
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	cdf := isCDF(drawn[0].Points)
	// A CDF leaves its lower right empty; throughput lines get headroom above for the legend.
	p.Legend.Top = !cdf
	p.Legend.Left = false
	if logX {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Add(plotter.NewGrid())
	for i, s := range drawn {
		pts := s.Points
		if logX || logY {
			pts = make(plotter.XYs, 0, len(s.Points))
			for _, pt := range s.Points {
				if (!logX || pt.X > 0) && (!logY || pt.Y > 0) {
					pts = append(pts, pt)
				}
			}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return nil, fmt.Errorf("bench: plot %s: %w", s.Name, err)
		}
		l.Color = plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i / 7)
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.Name, l)
		if !isCDF(pts) {
			sc, err := plotter.NewScatter(pts)
			if err == nil {
				sc.Color = plotutil.Color(i)
				sc.Shape = plotutil.Shape(i)
				p.Add(sc)
			}
		}
	}
	if !cdf && logY {
		p.Y.Max *= math.Pow(10, 0.25*float64(len(drawn))) // roughly one legend row per quarter decade
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var files []string
	for _, ext := range []string{".png", ".svg"} {
		f := filepath.Join(dir, base+ext)
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, f); err != nil {
			return nil, fmt.Errorf("bench: save %s: %w", f, err)
		}
		files = append(files, f)
	}
	return files, nil
}

// isCDF tells a step CDF (y within [0,1], non-decreasing) from a throughput line, which gets
// markers on its points.
func isCDF(pts plotter.XYs) bool {
	prev := math.Inf(-1)
	for _, p := range pts {
		if p.Y < 0 || p.Y > 1 || p.Y < prev {
			return false
		}
		prev = p.Y
	}
	return len(pts) > 2
}
