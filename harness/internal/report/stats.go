package report

import "oomlab/harness/internal/metrics"

func quantile(xs []float64, q float64) float64 { return metrics.Quantile(xs, q) }
