"""Stress cases for the honesty of labels, on several simulated region pairs.

Run: ``OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_shift.py [--size small]
[--seeds 11,12 21,22]`` (writes ``benchmarks/results/shift.md``).

For each pair of seeds, region A (three years) trains the models on its first year and
region B (a fresh region) is predicted with them; B's observations are then shifted
(NDTI +0.02 and +0.05, every index x0.8), a tillage model trained without
``conventional`` meets conventional fields, and A's second year is the harmless case.
The cases are those of ``tests/support/shift_cases.py``. Per case and target: the share of
fields labelled ``ok``, the accuracy of those labels against the simulator's truth, the
card's held-out accuracy at the threshold, the run's shift and class-mix scores with
their thresholds, and whether the run was flagged.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent / "tests" / "support"))

from shift_cases import build, outcomes  # noqa: E402  (test support, shared on purpose)


def markdown(table: pd.DataFrame) -> str:
    """Return a GitHub Markdown table of ``table`` (floats to 3 decimals)."""
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)
    rows = [[cell(v) for v in r] for r in table.itertuples(index=False)]
    head = [str(c) for c in table.columns]
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *["| " + " | ".join(r) + " |" for r in rows]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="small", choices=["small", "medium"])
    parser.add_argument("--seeds", nargs="+", default=["11,12", "21,22", "31,32"])
    parser.add_argument("--out", default=str(ROOT / "results" / "shift.md"))
    parser.add_argument("--workdir", default=None, help="keep the runs here (default: a temp dir)")
    args = parser.parse_args()
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.workdir or tmp)
        for pair in args.seeds:
            a, b = (int(x) for x in pair.split(","))
            root = base / f"{args.size}-{a}-{b}"
            root.mkdir(parents=True, exist_ok=True)
            t = time.perf_counter()
            cases = build(root, size=args.size, seeds=(a, b))
            table = outcomes(root, cases)
            table.insert(0, "seeds", pair)
            tables.append(table)
            print(f"{pair}: {time.perf_counter() - t:.0f} s, load {os.getloadavg()[0]:.1f}",
                  flush=True)
    table = pd.concat(tables, ignore_index=True)
    show = table[["seeds", "case", "target", "n", "labelled_share", "accuracy_ok",
                  "card_accuracy", "accuracy_unflagged", "shift_score", "shift_threshold",
                  "mix_score", "mix_threshold", "run_flagged"]]
    text = ["# Stress cases: do the labels given stay as accurate as the card says?", "",
            f"Region size `{args.size}`; seeds (A, B) {', '.join(args.seeds)}; "
            "`python benchmarks/bench_shift.py`.", "",
            "A run passes when the accuracy of its `ok` labels is within 0.05 of the card's "
            "held-out accuracy at the threshold, or it is flagged with every label withheld. "
            "`accuracy_unflagged` is what the labels withheld for the run's shift would have "
            "scored: below the card's minus 0.05, the flag was needed; above, it was a false "
            "alarm.",
            "", markdown(show), ""]
    Path(args.out).write_text("\n".join(text), encoding="utf-8")
    print(show.to_string(index=False))


if __name__ == "__main__":
    main()
