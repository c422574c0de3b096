"""Side-by-side benchmark of detector options for the embedded default (issue 19): a benchmark,
not a timed test.

Every option is trained for the SAME fixed number of steps (no wall-clock budget) with the same
seed on the default data, by the project's own train and evaluate stages (``kedro run --pipeline
train`` / ``evaluate`` with ``--params``), and scored on the held-out photos of the validation
split. CPU seconds are the user + system time of the train and evaluate processes (children's
rusage), so they stay comparable when other work shares the machine; wall seconds are printed too.

Usage (PROJECT holds conf/ and the data of ``kedro run --pipeline generate``):

    cd PROJECT && nice kedro run --pipeline generate
    python benchmarks/default_detector.py --project PROJECT --steps 300 \\
        --options srm_unet bayar_unet rgb_unet deeplabv3plus-r18

Training and loss variants of one option (issue 19's second and third rounds) are named on the
command line as ``NAME=param,param`` and run side by side, each in its own copy of the project
whose ``data/01``-``05`` link to PROJECT's generated data (so the data stages run once):

    python benchmarks/default_detector.py --project PROJECT --steps 300 --jobs 2 \
        --variant base= --variant dice1=train.models.srm_unet.dice_weight=1.0

Prints a Markdown table (docs/default_detector.md keeps the measured one) and writes every
option's headline numbers to PROJECT/benchmarks/default_detector.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

# option name -> the train.* parameters that select it (on top of conf/base)
OPTIONS: dict[str, list[str]] = {
    "srm_unet": ["train.model=srm_unet"],
    "bayar_unet": ["train.model=bayar_unet"],
    "rgb_unet": ["train.model=rgb_unet"],
    "deeplabv3plus-r18": ["train.model=deeplabv3plus", "train.models.deeplabv3plus.encoder_name=resnet18"],
    "segformer-b0": ["train.model=segformer"],
}

COLUMNS = ("option", "steps", "edited IoU", "pixel F1", "untouched predicted edited", "semantic mIoU",
           "generators predicted", "class IoU", "image AP (bin)", "image AP (sem)", "train+eval CPU s", "wall s")


def _kedro(project: Path, pipeline: str, params: list[str], log: Path) -> tuple[float, float]:
    """Run one ``kedro run`` in ``project``; returns (CPU seconds of the child, wall seconds).
    The child's own rusage (``os.wait4``), so runs side by side do not count each other."""
    kedro = Path(sys.executable).parent / "kedro"
    started = time.perf_counter()
    with log.open("a") as out:
        child = subprocess.Popen([str(kedro), "run", "--pipeline", pipeline, "--params", ",".join(params)],
                                 cwd=project, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy())
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, child.args)
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - started


def headline(metrics: dict) -> dict:
    """The issue's target numbers from a ``metrics.json`` (both tasks, in-domain protocol).

    edited IoU: the binary confusion matrix's edited-class IoU over the split; pixel F1: IMDL-BenCo
    per-image F1 averaged over edited images; untouched predicted edited: share of the untouched
    pixels the binary detector calls edited; semantic mIoU: over generators (background excluded);
    generators predicted: generators the semantic detector assigns at least one pixel to.
    """
    binary, semantic = metrics["binary"], metrics["semantic"]
    b_cm = np.asarray(binary["confusion_matrix"], dtype=np.float64)
    s_cm = np.asarray(semantic["confusion_matrix"], dtype=np.float64)
    names = semantic["class_names"][1:]
    predicted = [name for k, name in enumerate(names, start=1) if s_cm[:, k].sum() > 0]
    return {
        "edited IoU": binary["pixel"]["class_iou"][binary["class_names"][1]],
        "pixel F1": binary["pixel_per_image"]["manipulated"]["f1"],
        "untouched predicted edited": float(b_cm[0, 1:].sum() / max(b_cm[0].sum(), 1)),
        "semantic mIoU": semantic["pixel"]["miou"],
        "generators predicted": f"{len(predicted)}/{len(names)}",
        "class IoU": ", ".join(f"{n} {semantic['pixel']['class_iou'][n]:.2f}" for n in names),
        "image AP (bin)": binary["image"]["average_precision"],
        "image AP (sem)": semantic["image"]["average_precision"],
    }


def run_option(project: Path, option: str, steps: int, extra: list[str]) -> dict:
    """Train both tasks of ``option`` for ``steps`` steps, evaluate in-domain; the headline row."""
    params = [*OPTIONS[option], f"train.trainer.steps={steps}", "train.trainer.time_budget_s=null",
              "train.trainer.val_every=0", *extra]
    log = project / "benchmarks" / f"{option}.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text("")
    cpu_train, wall_train = _kedro(project, "train", params, log)
    cpu_eval, wall_eval = _kedro(project, "evaluate", ["evaluate.run=in_domain"], log)
    metrics_path = project / "data" / "08_reporting" / "metrics.json"
    metrics = json.loads(metrics_path.read_text())
    shutil.copy(metrics_path, log.with_suffix(".metrics.json"))
    return {"option": option, "steps": steps, **headline(metrics), "train CPU s": cpu_train,
            "train+eval CPU s": cpu_train + cpu_eval, "wall s": wall_train + wall_eval}


def variant_project(project: Path, name: str) -> Path:
    """A copy of ``project``'s conf whose generated data (``data/01``-``05``) are links to
    ``project``'s, so variants train and evaluate side by side without touching each other."""
    copy = project / "variants" / name
    shutil.rmtree(copy, ignore_errors=True)
    (copy / "data").mkdir(parents=True)
    (copy / "src").mkdir()
    shutil.copytree(project / "conf", copy / "conf")
    shutil.copy(project / "pyproject.toml", copy / "pyproject.toml")
    for layer in sorted((project / "data").glob("0[1-5]_*")):
        (copy / "data" / layer.name).symlink_to(layer.resolve())
    return copy


def run_variant(project: Path, option: str, steps: int, name: str, params: list[str]) -> dict:
    """``run_option`` in a fresh ``variant_project`` named ``name``; the row's option is the name."""
    row = run_option(variant_project(project, name), option, steps, params)
    return {**row, "option": name}


def table(rows: list[dict]) -> str:
    """Markdown table of the rows (floats to 3 decimals, seconds to whole numbers)."""
    def cell(key: str, value) -> str:
        if isinstance(value, float):
            return f"{value:.0f}" if key.endswith(" s") else f"{value:.3f}"
        return str(value)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(c, row.get(c, "")) for c in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, required=True, help="folder with conf/ and the generated data/")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS))
    parser.add_argument("--params", nargs="*", default=[], help="more kedro --params items, e.g. train.trainer.crop_size=96")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=PARAMS",
                        help="a variant of the first option: comma-separated kedro --params on top of --params")
    parser.add_argument("--jobs", type=int, default=1, help="variants run at once (each in its own project copy)")
    args = parser.parse_args(argv)
    if not (args.project / "data" / "05_model_input" / "splits.parquet").is_file():
        parser.error(f"{args.project}/data has no splits.parquet: run `kedro run --pipeline generate` there first")
    rows = []
    out = args.project / "benchmarks" / "default_detector.json"
    if args.variant:
        variants = [v.partition("=") for v in args.variant]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_variant, args.project, args.options[0], args.steps, name,
                                   [*args.params, *[p for p in extra.split(",") if p]])
                       for name, _, extra in variants]
            for future in futures:
                rows.append(future.result())
                out.parent.mkdir(exist_ok=True)
                out.write_text(json.dumps(rows, indent=2))
                print(table(rows[-1:]), flush=True)
        print(table(rows))
        return 0
    for option in args.options:
        rows.append(run_option(args.project, option, args.steps, args.params))
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(rows, indent=2))
        print(table(rows[-1:]), flush=True)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
