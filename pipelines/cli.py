"""The ``regenmap`` command line: one command per stage, plus ``demo`` and ``run``.

Heavy imports happen inside the commands so that ``regenmap --help`` is instant.
Every :class:`regenmap.errors.RegenmapError` is printed as one clear message
and mapped to its exit code (see ``docs/cli.md``); an interruption (Ctrl-C,
SIGTERM) exits with 130 and says which signal; anything else is reported as an
unexpected failure (exit 1) whose traceback goes to a file, never to the screen.
With ``--quiet`` standard error holds JSON lines only, the last one a
``finished`` event with the outcome.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from regenmap import __version__
from regenmap.pipelines.log import Reporter, outcome, save_traceback

app = typer.Typer(
    name="regenmap",
    help="Map regenerative farming practices per field from satellite image time series.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()

T = TypeVar("T")

ConfigArg = Annotated[Path, typer.Argument(help="Run configuration (YAML).", show_default=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars; JSON log lines.")]
ProfileOpt = Annotated[
    str | None,
    typer.Option("--profile", help="Cluster profile: local, slurm, pbs (configs/cluster) or a YAML path; "
                 "slurm and pbs need `pip install regenmap[cluster]`."),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option("--scheduler", help="Address of an existing Dask scheduler, e.g. tcp://host:8786."),
]


def _guard(fn: Callable[[], T], reporter: Reporter | None = None, command: str = "") -> T:
    """Run ``fn``; turn any failure into a message (or a final JSON event) and its exit code."""
    try:
        return fn()
    except (Exception, KeyboardInterrupt) as err:
        _fail(err, reporter, command)


def _fail(err: BaseException, reporter: Reporter | None, command: str) -> NoReturn:
    """Report how a command failed, never as a traceback; exit with the failure's code."""
    end = outcome(err)
    interrupted = isinstance(err, KeyboardInterrupt)
    if reporter is not None:
        reporter.finished(command, err)  # nothing new if the run already said how it ended
        trace = reporter.traceback_path
    else:
        trace = save_traceback(err) if end["exit_code"] == 1 and not interrupted else None
    if reporter is None or not reporter.quiet:
        if interrupted:
            console.print(f"[yellow]{escape(end['message'])}[/]", highlight=False, soft_wrap=True)
        elif end["exit_code"] == 1:
            where = f"; the traceback is in {trace}" if trace else ""
            console.print(f"[bold red]error:[/] {escape(end['message'])}. This is a bug in "
                          f"regenmap or a failure outside it{escape(where)}; please report it "
                          "with the log.", highlight=False, soft_wrap=True)
        else:
            console.print(f"[bold red]error:[/] {escape(end['message'])}", highlight=False,
                          soft_wrap=True)
    raise typer.Exit(code=end["exit_code"])


def _version(value: bool) -> None:
    if value:
        out.print(f"regenmap {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """Map regenerative farming practices per field from satellite image time series.

    Quick start: `regenmap demo` simulates a small region and runs every stage on it.
    """


def _load(config: Path, scheduler: str | None = None) -> Any:
    from regenmap.pipelines.config import load_config

    cfg = load_config(config)
    if scheduler:
        cfg = cfg.model_copy(update={"cluster": cfg.cluster.model_copy(update={"address": scheduler})})
    return cfg


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("demo-out"),
    size: Annotated[str, typer.Option(help="Region size: small, medium or large.")] = "small",
    seed: Annotated[int, typer.Option(help="Seed of the simulated region and the model.")] = 0,
    quiet: QuietOpt = False,
) -> None:
    """Simulate a farming region and run every stage on it, end to end.

    Example: `regenmap demo --out demo-out`
    """
    from regenmap.pipelines.demo import demo as run_demo
    from regenmap.pipelines.summary import print_summary

    reporter = Reporter(quiet=quiet)
    result = _guard(lambda: run_demo(out_dir, size=size, seed=seed, reporter=reporter),
                    reporter, "run")
    print_summary(result, console=out)


@app.command()
def simulate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to write the region into.")],
    size: Annotated[str, typer.Option(help="small, medium or large.")] = "small",
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same region.")] = 0,
    n_dates: Annotated[int | None, typer.Option(help="Acquisitions in a year (default ~73).")] = None,
    years: Annotated[int, typer.Option(help="Consecutive years on the same fields.")] = 1,
) -> None:
    """Write a seeded simulated farming landscape: fields GeoPackage and Sentinel-2 L2A-like scenes.

    Example: `regenmap simulate --out region --size small --seed 1`
    """
    from regenmap.pipelines.demo import simulate as run_simulate

    region = _guard(lambda: run_simulate(out_dir, size=size, seed=seed, n_dates=n_dates,
                                         years=years))
    out.print(f"{region.n_fields} fields, {region.n_acquisitions} acquisitions")
    out.print(f"fields: {region.fields_path}")
    out.print(f"scenes: {region.scenes_dir}")


def _stage(name: str, config: Path, *, scheduler: str | None = None,
           profile: str | None = None, quiet: bool = False) -> None:
    """Run one stage of :data:`~regenmap.pipelines.stages.STAGES` on ``config``; print what it wrote.

    The configuration is validated before the stage is imported, so a bad config
    fails fast with its own message and exit code. Like ``regenmap run``, the stage
    checks the output folder is writable, holds its lock, removes what killed runs
    left there, shows its progress, ends with a summary (extraction) and, on the
    cluster, uses the same cluster.
    """
    reporter = Reporter(quiet=quiet)
    cfg = _guard(lambda: _load(config, scheduler), reporter, name)
    from regenmap.io import to_jsonable
    from regenmap.pipelines.checkpoints import clean_leftovers, hold_output_folder
    from regenmap.pipelines.cluster import open_client
    from regenmap.pipelines.inputs import check_fields
    from regenmap.pipelines.stages import STAGES
    from regenmap.pipelines.summary import stage_summary

    stage = STAGES[name]

    def go() -> dict[str, Path]:
        with ExitStack() as stack:
            stack.enter_context(reporter.capture())
            reporter.cleaned(stack.enter_context(hold_output_folder(Path(cfg.out_dir))), name)
            check_fields(cfg)  # a bad field file stops the stage before a cluster starts
            client = (stack.enter_context(open_client(cfg.cluster, profile=profile, quiet=quiet))
                      if stage.uses_cluster else None)
            with reporter.stage(name):
                if stage.progress_unit:
                    with reporter.progress(name, stage.progress_unit) as progress:
                        written = stage(cfg, client=client, progress=progress)
                else:
                    written = stage(cfg, client=client)
            reporter.cleaned(clean_leftovers(Path(cfg.out_dir)), name)  # of workers lost mid-write
            summary = stage_summary(name, cfg)
            if summary is not None:
                reporter.summary(name, summary[0], **summary[1])
            return written

    written = _guard(go, reporter, name)
    reporter.finished(name, outputs=to_jsonable(written), timings=reporter.timings)
    for key, path in written.items():
        out.print(f"{key}: {path}")


@app.command()
def extract(config: ConfigArg, scheduler: SchedulerOpt = None, profile: ProfileOpt = None,
            quiet: QuietOpt = False) -> None:
    """Per-field statistics of every acquisition (the observations table).

    Example: `regenmap extract configs/demo.yaml`
    """
    _stage("extract", config, scheduler=scheduler, profile=profile, quiet=quiet)


@app.command()
def features(config: ConfigArg, quiet: QuietOpt = False) -> None:
    """Per-field time-series features from the observations table.

    Example: `regenmap features configs/demo.yaml`
    """
    _stage("features", config, quiet=quiet)


@app.command()
def train(config: ConfigArg, quiet: QuietOpt = False) -> None:
    """Train one LightGBM model per target, with spatially held-out early stopping.

    Example: `regenmap train configs/demo.yaml`
    """
    _stage("train", config, quiet=quiet)


@app.command()
def evaluate(config: ConfigArg, quiet: QuietOpt = False) -> None:
    """Spatial cross-validation: metrics with intervals, by group and field size, calibration.

    Example: `regenmap evaluate configs/demo.yaml`
    """
    _stage("evaluate", config, quiet=quiet)


@app.command()
def predict(config: ConfigArg, quiet: QuietOpt = False) -> None:
    """Label every field and write the styled GeoPackage, maps and run report.

    Example: `regenmap predict configs/demo.yaml`
    """
    _stage("predict", config, quiet=quiet)


@app.command()
def run(config: ConfigArg, scheduler: SchedulerOpt = None, profile: ProfileOpt = None,
        quiet: QuietOpt = False) -> None:
    """Run every stage with checkpoints; a re-run continues where it stopped.

    Example: `regenmap run configs/demo.yaml --scheduler tcp://10.0.0.5:8786`
    """
    reporter = Reporter(quiet=quiet)
    cfg = _guard(lambda: _load(config, scheduler), reporter, "run")
    from regenmap.pipelines.job import run as run_all
    from regenmap.pipelines.summary import print_summary

    result = _guard(lambda: run_all(cfg, profile=profile, reporter=reporter), reporter, "run")
    print_summary(result, console=out)


@app.command("map")
def map_(
    gpkg: Annotated[Path, typer.Argument(help="A practices GeoPackage written by regenmap.")],
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the maps.")] = None,
) -> None:
    """Re-render the static and interactive maps from a results GeoPackage.

    Example: `regenmap map demo-out/practices.gpkg --out maps/`
    """
    from regenmap.maps import render_maps

    paths = _guard(lambda: render_maps(gpkg, out_dir or gpkg.parent / "maps"))
    for path in paths:
        out.print(str(path))


@app.command("model-info")
def model_info(
    model_dir: Annotated[Path, typer.Argument(help="A model directory written by `regenmap train`.")],
) -> None:
    """Show a model's target, classes, features, training summary and metrics.

    Example: `regenmap model-info demo-out/model/tillage`
    """
    from regenmap.io import json_text
    from regenmap.models.artifact import model_info as info

    out.print_json(json_text(_guard(lambda: info(model_dir))))


# --------------------------------------------------------------------------- sampling
sample_app = typer.Typer(
    help="Which fields to visit: reference samples for accuracy and area, fields for training, "
         "and importing what the field teams collected.",
    no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(sample_app, name="sample")
NameOpt = Annotated[str | None, typer.Option("--name", help="Name of the sample (its folder "
                                             "in out_dir/sampling/); from the config if omitted.")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed of the draw (the run's seed "
                                             "if omitted).")]


def _locked(cfg: Any, fn: Callable[[], T]) -> T:
    from regenmap.pipelines.checkpoints import run_lock

    def go() -> T:
        with run_lock(Path(cfg.out_dir)):
            return fn()

    return _guard(go)


def _with_seed(cfg: Any, seed: int | None) -> Any:
    return cfg if seed is None else cfg.model_copy(update={"seed": seed})


@sample_app.command("design")
def sample_design(
    config: ConfigArg,
    name: NameOpt = None,
    target: Annotated[str | None, typer.Option(help="Target whose map classes are the strata.")] = None,
    n: Annotated[int | None, typer.Option("--n",
        help="Fixed number of fields (instead of --target-se).")] = None,
    target_se: Annotated[float | None, typer.Option(
        help="Standard error to reach for every class-area share, e.g. 0.02.")] = None,
    allocation: Annotated[str | None, typer.Option(help="neyman, proportional, equal or olofsson.")] = None,
    seed: SeedOpt = None,
) -> None:
    """Draw a stratified reference sample for accuracy and area (Olofsson et al. 2014).

    Strata are the mapped classes (withheld fields are a stratum of their own), crossed with
    `sample.design.by`; sizes reach the target standard error of every class-area share.
    Writes `out_dir/sampling/<name>/`: a styled GeoPackage with an empty form, a CSV with
    centroids, `sample.parquet` and `sample.json`.

    Example: `regenmap sample design run.yaml --target-se 0.03`
    """
    from regenmap.pipelines.sampling import design

    cfg = _with_seed(_guard(lambda: _load(config)), seed)
    written = _locked(cfg, lambda: design(cfg, name=name, target=target, n=n,
                                          target_se=target_se, allocation=allocation))
    _print_sample(written)


@sample_app.command("next")
def sample_next(
    config: ConfigArg,
    name: NameOpt = None,
    budget: Annotated[int | None, typer.Option(help="Number of fields to choose.")] = None,
    clusters: Annotated[int | None, typer.Option(help="Visit them in this many compact areas.")] = None,
    seed: SeedOpt = None,
) -> None:
    """Choose the fields whose labels should most improve the model, and say why.

    Uncertain fields (margin or entropy) that are typical of the unvisited ones and unlike the
    labelled ones, spread in space (`sample.next.min_distance_m`, `max_per_unit`) or in
    `--clusters` areas. Writes the same files as `sample design`.

    Example: `regenmap sample next run.yaml --budget 40 --clusters 3`
    """
    from regenmap.pipelines.sampling import next_fields

    cfg = _with_seed(_guard(lambda: _load(config)), seed)
    written = _locked(cfg, lambda: next_fields(cfg, name=name, budget=budget, clusters=clusters))
    _print_sample(written)


def _print_sample(written: dict[str, Path]) -> None:
    from regenmap.io import read_json

    info = read_json(written["info"], what="sample description")
    if info.get("kind") == "design":
        d = info["design"]
        ses = ", ".join(f"{c} {v:.3f}" for c, v in d["expected_se"].items())
        out.print(f"{d['n']} fields in {d['n_strata']} strata (Cochran size {d['cochran_n']}); "
                  f"expected SE of the area shares: {ses}")
        for note in d["notes"]:
            out.print(f"note: {note}")
    else:
        out.print(f"{info['n']} fields chosen among {info['n_candidates']} unlabelled ones")
    for key, path in written.items():
        out.print(f"{key}: {path}")


@sample_app.command("import")
def sample_import(
    config: ConfigArg,
    collected: Annotated[Path, typer.Argument(
        help="The filled form: the sample's CSV or GeoPackage.", show_default=False)],
    sample: Annotated[str | None, typer.Option("--sample",
        help="Name of the sample the form belongs to.")] = None,
    observer: Annotated[str | None, typer.Option(
        help="Who collected the labels (for rows that do not say).")] = None,
    method: Annotated[str | None, typer.Option(
        help="How: field visit, farmer interview, photo, remote.")] = None,
    visit_date: Annotated[str | None, typer.Option(
        help="When, YYYY-MM-DD (for rows that do not say).")] = None,
    replace: Annotated[bool, typer.Option(help="Replace labels of fields imported before.")] = False,
) -> None:
    """Check collected labels and append them, with who, when and how, to the run's labels.

    Refuses unknown classes, duplicate or unknown field ids and fields outside the sample.
    Rows with another outcome than `labelled` are counted as non-response.

    Example: `regenmap sample import run.yaml filled.csv --observer "team A"`
    """
    from regenmap.pipelines.sample_import import import_labels

    cfg = _guard(lambda: _load(config))
    res = _locked(cfg, lambda: import_labels(cfg, collected, sample=sample, observer=observer,
                                             method=method, visit_date=visit_date,
                                             replace=replace))
    skipped = ", ".join(f"{k}: {v}" for k, v in res["not_labelled"].items()) or "none"
    out.print(f"{res['imported']} labelled fields imported from sample {res['sample']} "
              f"(not labelled: {skipped}); {res['total']} labels in {res['labels']}")


@app.command()
def assess(
    config: ConfigArg,
    sample: Annotated[str | None, typer.Option("--sample", help="Name of the design sample.")] = None,
) -> None:
    """Design-based accuracy and error-adjusted class areas with 95 % intervals.

    From a `sample design` sample and its imported labels: overall, user's and producer's
    accuracy and the area of each class (Olofsson et al. 2014), per region where the sample
    allows; written as JSON, HTML and an `assessment` table in the results GeoPackage.

    Example: `regenmap assess run.yaml`
    """
    from regenmap.io import read_json
    from regenmap.pipelines.assess import assess as run_assess

    cfg = _guard(lambda: _load(config))
    written = _locked(cfg, lambda: run_assess(cfg, sample=sample))
    result = read_json(written["json"], what="assessment")

    def num(v: float | None, digits: int) -> str:
        return "-" if v is None else f"{v:.{digits}f}"

    for target, e in result["targets"].items():
        o = e["overall_accuracy"]
        out.print(f"{target}: overall accuracy {num(o['value'], 3)} "
                  f"[{num(o['ci95'][0], 3)}, {num(o['ci95'][1], 3)}] from {e['n_labelled']} "
                  "fields")
        for c, a in e["area"].items():
            out.print(f"  {c}: {num(a['value'], 1)} ha [{num(a['ci95'][0], 1)}, "
                      f"{num(a['ci95'][1], 1)}] (mapped {e['mapped_area_ha'].get(c, 0.0):.1f} ha)")
        for note in e["notes"]:
            out.print(f"  note: {note}")
    for key, path in written.items():
        out.print(f"{key}: {path}")


def main() -> None:
    """Entry point of the ``regenmap`` console script."""
    # OpenMP threads (LightGBM) otherwise spin-wait for a descheduled sibling,
    # which made training 10x slower on shared nodes; it must be set before
    # the OpenMP runtime loads, so here, before any stage is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from regenmap.pipelines.signals import signals_as_interrupt

    with signals_as_interrupt():  # SIGTERM stops any command like Ctrl-C, named as such
        app(prog_name="regenmap")


if __name__ == "__main__":  # pragma: no cover
    main()
