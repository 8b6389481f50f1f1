#!/usr/bin/env python3
"""The step breakdown of a real install (bench/results/install_times.json) as an SVG, written directly
(no plotting library): docs/benchmarks-install-steps.svg.

    python3 bench/chart.py [--input bench/results/install_times.json] [--output docs/benchmarks-install-steps.svg]

One bar per step of the first standalone mTLS install, and the re-run (median) below as one stacked bar."""

import argparse
import json
import os
import sys
from xml.sax.saxutils import escape

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common as C  # noqa: E402

OUTPUT = os.path.join(C.REPO, "docs", "benchmarks-install-steps.svg")
COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac", "#86bcb6", "#d37295"]
OTHER = "start-up, checks and summary"


def svg(result):
    first = result["first"]
    steps = [(s["step"], s["seconds"]) for s in first["steps"]] + [(OTHER, first["other_seconds"])]
    reruns = sorted(result["reruns"], key=lambda r: r["seconds"])
    median = reruns[len(reruns) // 2]
    width, left, right, row = 1000, 420, 90, 24
    scale = (width - left - right) / max(first["seconds"], 1e-9)
    colour = {name: COLOURS[i % len(COLOURS)] for i, (name, _) in enumerate(steps)}
    out = []
    y = 50
    out.append('<text x="%d" y="24" font-size="16" font-weight="bold">First standalone mTLS install on the Docker '
               'harness: %.1f s</text>' % (10, first["seconds"]))
    out.append('<text x="10" y="42" font-size="12" fill="#555">per step, from the installer\'s --json summary '
               '(%s, %s CPUs, load %.2f)</text>' % (escape(result["machine"]["date"][:10]), result["machine"]["nproc"],
                                                    result["machine"]["load"]["1min"]))
    for name, seconds in steps:
        y += row
        bar = max(seconds * scale, 1)
        out.append('<text x="%d" y="%d" font-size="12" text-anchor="end">%s</text>' % (left - 8, y + 15, escape(name)))
        out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>' % (left, y + 3, bar, row - 6, colour[name]))
        out.append('<text x="%.1f" y="%d" font-size="12">%.2f s</text>' % (left + bar + 6, y + 15, seconds))
    y += row + 20
    out.append('<text x="10" y="%d" font-size="14" font-weight="bold">Re-run with nothing to change: %.2f s '
               '(median of %d; 0 changes, 0 restarts)</text>' % (y, median["seconds"], len(reruns)))
    y += 10
    rerun_steps = [(s["step"], s["seconds"]) for s in median["steps"]] + [(OTHER, median["other_seconds"])]
    rerun_scale = (width - left - right) / max(median["seconds"], 1e-9)
    x = left
    out.append('<text x="%d" y="%d" font-size="12" text-anchor="end">re-run, stacked (own scale)</text>'
               % (left - 8, y + 15))
    for name, seconds in rerun_steps:
        w = seconds * rerun_scale
        if w <= 0:
            continue
        out.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %.3f s</title></rect>'
                   % (x, y + 3, w, row - 6, colour.get(name, "#999"), escape(name), seconds))
        x += w
    y += row + 4
    legend = sorted(rerun_steps, key=lambda s: -s[1])[:3]
    out.append('<text x="%d" y="%d" font-size="12" fill="#555">largest parts: %s</text>' % (
        left, y + 10, escape("; ".join("%s %.2f s" % item for item in legend))))
    height = y + 30
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
            'font-family="sans-serif">\n<rect width="100%%" height="100%%" fill="white"/>\n%s\n</svg>\n'
            % (width, height, width, height, "\n".join(out)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=os.path.join(C.RESULTS, "install_times.json"))
    parser.add_argument("--output", default=OUTPUT)
    args = parser.parse_args()
    with open(args.input) as handle:
        result = json.load(handle)
    if "first" not in result:
        print("chart: no install figures (%s)" % result.get("skipped", "install_times did not run"))
        return 0
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    with open(args.output, "w") as handle:
        handle.write(svg(result))
    print("  wrote %s" % os.path.relpath(args.output, C.REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
