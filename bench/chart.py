"""Draws bench/results/results.png from results.csv (written by `switchyard-bench report`).

    python3 bench/chart.py results.csv results.png

One panel per measure with a target; bars are medians, whiskers span min..max of the
rounds; switchyard is the highlighted bar.
"""

import csv
import sys
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

TARGETS = ["direct", "nginx", "haproxy", "relay", "switchyard"]
LABELS = {"direct": "direct", "nginx": "nginx", "haproxy": "HAProxy", "relay": "tokio relay", "switchyard": "switchyard"}
COLORS = {"direct": "#b0b0b0", "nginx": "#4e9a3a", "haproxy": "#3a6ea5", "relay": "#8c8c8c", "switchyard": "#d9480f"}


def main(src, dst):
    panels = OrderedDict()
    with open(src, newline="") as f:
        for row in csv.DictReader(f):
            key = (row["metric"], row["unit"], row["higher_is_better"] == "true")
            panels.setdefault(key, {})[row["target"]] = (float(row["median"]), float(row["min"]), float(row["max"]))
    if not panels:
        sys.exit("no data in " + src)
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 4.0 * rows), squeeze=False)
    axes = [ax for row in axes for ax in row]
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    for ax, ((metric, unit, higher), data) in zip(axes, panels.items()):
        names = [t for t in TARGETS if t in data]
        mids = [data[t][0] for t in names]
        lo = [data[t][0] - data[t][1] for t in names]
        hi = [data[t][2] - data[t][0] for t in names]
        bars = ax.bar(
            [LABELS[t] for t in names], mids, yerr=[lo, hi], capsize=3,
            color=[COLORS[t] for t in names], edgecolor="black", linewidth=0.4,
        )
        for bar, value in zip(bars, mids):
            text = f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
        ax.set_title(f"{metric}\n{unit} ({'higher' if higher else 'lower'} is better)", fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    fig.suptitle("Switchyard vs nginx vs HAProxy, one core each (median of rounds, whiskers: min–max)", fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
