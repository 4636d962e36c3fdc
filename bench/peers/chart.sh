#!/usr/bin/env bash
# Renders the results of a comparison run (results.csv, written by
# `go run . -out DIR`) into a PNG with gnuplot: deliveries per second and
# p99 latency per workload, one bar per system, both on log scales.
#
#   ./chart.sh [results/results.csv] [results/results.png]
set -euo pipefail

csv="${1:-results/results.csv}"
png="${2:-${csv%.csv}.png}"
command -v gnuplot >/dev/null || { echo "chart.sh: gnuplot not found (apt-get install gnuplot-nox)" >&2; exit 1; }
[ -r "$csv" ] || { echo "chart.sh: cannot read $csv" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# One row per workload, one column per system, in first-seen order; "?"
# (missing) where a system has no result or failed.
pivot() { # $1: CSV column to plot
	awk -F, -v col="$1" '
		NR == 1 { next }
		{
			if (!($1 in seenw)) { seenw[$1] = 1; w[++nw] = $1 }
			if (!($2 in seens)) { seens[$2] = 1; s[++ns] = $2 }
			v[$1, $2] = (NF == 14 && $14 == "" && $col + 0 > 0) ? $col : "?" # failed runs carry an error (maybe with commas)
		}
		END {
			printf "workload"
			for (j = 1; j <= ns; j++) printf " %s", s[j]
			printf "\n"
			for (i = 1; i <= nw; i++) {
				printf "%s", w[i]
				for (j = 1; j <= ns; j++) printf " %s", ((w[i], s[j]) in v) ? v[w[i], s[j]] : "?"
				printf "\n"
			}
		}' "$csv"
}
pivot 3 >"$tmp/rate.dat"
pivot 6 >"$tmp/p99.dat"
systems=$(head -1 "$tmp/rate.dat" | wc -w)

gnuplot <<GNUPLOT
set terminal pngcairo size 1200,900 font ",11"
set output "$png"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top right
set grid ytics
set logscale y
set multiplot layout 2,1 title "ringcast vs NATS vs Redis — same workloads, same flow control, one machine"
set title "Throughput (deliveries per second, higher is better)"
set ylabel "deliveries/s"
plot for [c=2:$systems] "$tmp/rate.dat" using c:xtic(1) title columnheader(c)
set title "p99 latency, publish to receipt (µs, lower is better)"
set ylabel "µs"
plot for [c=2:$systems] "$tmp/p99.dat" using c:xtic(1) title columnheader(c)
unset multiplot
GNUPLOT
echo "chart.sh: wrote $png"
