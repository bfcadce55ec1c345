"""Evaluation plots and the model card (written without touching the user's matplotlib state)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from regenmap.io import write_json_atomic
from regenmap.models.artifact import load_model, save_model
from regenmap.models.card import card_blocks
from regenmap.models.document import render_html, render_markdown
from regenmap.models.evaluate import cross_validate
from regenmap.models.options import CVOptions, EvaluationOptions, LabelledFields
from regenmap.models.train import train_target

KINDS = ("reliability", "coverage", "confusion", "groups", "importance")

# Runs in a fresh interpreter: a notebook user has chosen a backend before importing regenmap.
SCRIPT = """
import json, sys
from pathlib import Path
import matplotlib
matplotlib.use("svg")
before = matplotlib.get_backend()
import regenmap.maps.report, regenmap.maps.static, regenmap.models.card, regenmap.models.plots
after_import = matplotlib.get_backend()
from regenmap.models.artifact import load_model
from regenmap.models.card import write_model_card
from regenmap.models.plots import write_plots
d = Path(sys.argv[1])
model = load_model(d / "model")
report = json.loads((d / "report.json").read_text())
plots = write_plots(report, model, d / "plots")
card = write_model_card(model, report, plots, d / "card")
print(json.dumps({"before": before, "after_import": after_import,
                  "after_write": matplotlib.get_backend(),
                  "pyplot": "matplotlib.pyplot" in sys.modules,
                  "plots": sorted(p.name for p in plots.values()),
                  "card": sorted(p.name for p in card.values())}))
"""


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, data, series, fast) -> Path:  # type: ignore[no-untyped-def]
    """A saved tillage model and its evaluation report (temperature-calibrated)."""
    feats, _ = data
    model = train_target(
        LabelledFields.of(
            feats, series["tillage"], target="tillage", groups=series["region"], area_ha=series["area_ha"]
        ),
        fast,
    )
    report = cross_validate(
        LabelledFields.of(
            feats,
            series["tillage"],
            target="tillage",
            groups=series["region"],
            group_name="region",
            area_ha=series["area_ha"],
        ),
        fast,
        CVOptions(n_folds=3),
        EvaluationOptions(n_bootstrap=50, calibration="temperature"),
    )
    d = tmp_path_factory.mktemp("evaluated")
    save_model(model, d / "model")
    write_json_atomic(d / "report.json", report)
    return d


def test_plots_and_card_leave_the_matplotlib_backend_alone(evaluated: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(evaluated)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["before"] == out["after_import"] == out["after_write"] == "svg"
    assert not out["pyplot"]  # figures are built outside pyplot: no global figure state
    assert out["plots"] == sorted(f"tillage_{k}.png" for k in KINDS)
    assert out["card"] == ["model_card.html", "model_card.json", "model_card.md"]
    for k in KINDS:
        assert (evaluated / "plots" / f"tillage_{k}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


SECTIONS = (
    "Model details",
    "Owner, licence and contact",
    "Intended use",
    "Factors",
    "Metrics",
    "Evaluation data",
    "Training data",
    "Quantitative analyses",
    "Ethical considerations",
    "Caveats and recommendations",
)


def test_card_sections_in_order_and_rendered_through_the_shared_page(evaluated: Path) -> None:
    model = load_model(evaluated / "model")
    report = json.loads((evaluated / "report.json").read_text())
    blocks = card_blocks(model, report, {})
    assert blocks[0].kind == "h1" and blocks[0].content == "Model card: tillage"
    assert tuple(b.content for b in blocks if b.kind == "h2") == SECTIONS
    md = render_markdown(blocks)
    assert f"held-out accuracy {report['overall']['accuracy']:.3f}" in md
    page = render_html(blocks, title="Model card: tillage")
    assert page.count("<style>") == 1 and page.count("<h2>") == len(SECTIONS)
    # text is escaped in tables too (size classes such as "<2 ha"), code spans become <code>
    assert "&lt;2 ha" in page and "<2 ha" not in page
    assert "<code>tillage</code>" in page


def test_card_names_who_answers_for_it_or_shows_the_gap(evaluated: Path, tmp_path: Path) -> None:
    from regenmap.models.card import CardInfo, write_model_card

    model = load_model(evaluated / "model")
    report = json.loads((evaluated / "report.json").read_text())
    md = render_markdown(card_blocks(model, report, {}))
    assert "**Incomplete**" in md and "Owner: _not given_ (set `model.card.owner`)" in md
    assert "Sensitive data" in md and "personal data" in md
    info = CardInfo(owner="Programme X", licence="CC-BY-4.0", citation="X et al. 2026",
                    contact="maps@example.org", sensitive_data="Processed under art. 6(1)(e).",
                    label_source="labels/visits.gpkg", datasheet="datasheet.html")
    paths = write_model_card(model, report, {}, tmp_path, info)
    text = paths["markdown"].read_text()
    assert "Incomplete" not in text and "Owner: Programme X" in text
    assert "[datasheet.html](datasheet.html)" in text and "`labels/visits.gpkg`" in text
    assert "Processed under art. 6(1)(e)." in text
    card = json.loads(paths["json"].read_text())
    assert card["schema"] == "regenmap.model_card/1" and card["missing"] == []
    assert card["accountability"]["contact"] == "maps@example.org"
    assert card["metrics"]["overall"]["accuracy"] == report["overall"]["accuracy"]
    assert card["metrics"]["operating_point"]["threshold"] == report["operating_point"]["threshold"]
    assert "Owner, licence and contact" in card["sections"]
