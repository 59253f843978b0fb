"""Draws latest.png from latest.json (make bench): the cold starts, and every peer-vs-Rust ratio."""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(source, target):
    with open(source) as f:
        report = json.load(f)
    cold = report["cold_start_ms"]
    ratios = report["ratios"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6))

    names = list(cold)
    medians = [cold[n]["median"] for n in names]
    low = [cold[n]["median"] - cold[n]["min"] for n in names]
    high = [cold[n]["max"] - cold[n]["median"] for n in names]
    colors = ["tab:orange" if n.startswith("peer-") else "tab:gray" if "probe" in n else "tab:blue" for n in names]
    left.barh(names, medians, xerr=[low, high], color=colors)
    left.set_xscale("log")
    left.invert_yaxis()
    left.set_xlabel("cold start, ms (median, min–max; log scale)")
    left.set_title("Process start to the first GET /next")

    labels = list(ratios)
    right.barh(labels, [ratios[k] for k in labels], color="tab:green")
    right.axvline(1, color="black", linewidth=0.8)
    right.invert_yaxis()
    right.set_xlabel("peer ÷ Rust (medians; > 1: Rust is ahead)")
    right.set_title("Ratios")

    mode = " (BENCH_SIZE=tiny: debug binaries)" if report.get("tiny") else ""
    fig.suptitle(f"make bench, {report['date']}, {report['machine']}, {report['cores']}{mode}")
    fig.tight_layout()
    fig.savefig(target, dpi=90)
    print(f"bench: wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
