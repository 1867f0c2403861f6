"""The whole pipeline at full size, every stage: the GPU profile's sizes (profiles/gpu-imagenet.yaml:
the whole field at 224x224, all four magnifications) on a synthetic BreakHis of the real size (82
patients, 7,909 700x460 PNGs, rendered by benchmarks/scaling.py), each model's training capped at a
few steps (`train.steps_per_epoch`). Wall time, peak memory and images per second of every stage
and model on this machine, then the memory each model needs to train at 224x224 for a batch of 32
and 64: measured (peak RSS of a few training steps on this machine's device) beside the
projection of the params check (`training_memory` in breakhis/pipeline/machine.py).

    python benchmarks/full_size.py [--workdir DIR] [--keep] [--scale S] [--pool N] [--steps 4]
                                   [--batch-size 32] [--predict 300] [--memory-batches 32 64]
                                   [--memory-steps 2] [--mixed-precision] [--results DIR]
                                   [--json PATH]

What runs, in one fresh project folder, each stage as DVC runs it (`python -m stages.<name>`, this
checkout's code; peak memory: the summed RSS of the stage's process tree, sampled every 50 ms, as
benchmarks/scaling.py measures it):
- ingest, split, augment: the profile's data params on the rendered tree;
- train-custom, train-vgg19, train-resnet50: the profile, except 1 epoch per phase (VGG19 and
  ResNet50: 1 head epoch on the frozen backbone, then 1 fine-tuning epoch), `--steps` batches of
  `--batch-size` per epoch (`train.steps_per_epoch`), min_epochs 1, float32 unless --mixed-precision
  (the profile's, for a GPU runner: on a CPU float16 measures emulation), and the ImageNet weights replaced by
  weights files of the same architectures with random values (nothing can be downloaded here; the
  layers, the frozen backbone of phase 1 and the layers fine-tuned in phase 2 are the profile's, so
  the compute is the same). Validation runs on the whole validation split every epoch, as it would;
- evaluate: the whole test split (and the validation split for the decision rule), as it would;
- predict (`python -m commands.predict`): `--predict` raw 700x460 images of the tree, every model.
Training images/s: the timed batches of each phase, the first batch of each (tracing) left out, from
a callback on Keras's fit (the stage's own code unchanged); inference images/s of evaluate, per
model: its `model.predict` batches likewise. Stage images/s: the stage's images over its wall time,
start-up included.

Memory per model: a fresh process per model and batch trains the model (the custom CNN; VGG19 and
ResNet50 with every layer trainable, the most a step can hold) on random 224x224 tensors for
`--memory-steps` timed steps after the first, as `python3 run.py gpu-check` does (float32, or mixed
precision with --mixed-precision); its
peak RSS and images/s on this machine, on a GPU also the device's peak memory (TensorFlow's
`get_memory_info`, column gpu_peak_mib); and the params check's estimate (float32 activations; mixed
precision on a GPU needs less) as the projection where no GPU was measured.

--results DIR writes full_size.csv and full_size_memory.csv there (docs/results/ holds the committed
ones). --workdir and --keep as in benchmarks/scaling.py: the rendered tree is reused next time.
"""

from __future__ import annotations

import argparse
import csv
import json
import runpy
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from benchmarks.scaling import ensure_tree, run_stage, tree_path  # noqa: E402
from breakhis.pipeline.machine import GB, training_memory
from breakhis.pipeline.param_types import MODEL_NAMES
from breakhis.pipeline.params import Params
from breakhis.pipeline.profiles import apply, load_profile  # noqa: E402

PROFILE = "gpu-imagenet"
SIZE = (224, 224)
BACKBONES = ("vgg19", "resnet50")
TIMINGS = "timings.json"  # what the timing wrapper writes in the project folder


# ---- inside a stage's process: time Keras's batches ----------------------------------------------


def timed_module(out: Path, module: str, args: list[str]) -> None:
    """Run `python -m module args` in this process with every Keras fit and predict timed batch by
    batch (a callback added to the stage's own); the records go to `out`, even if the stage fails."""
    import keras

    records: list[dict[str, Any]] = []

    class BatchTimer(keras.callbacks.Callback):
        def __init__(self, kind: str, model_name: str) -> None:
            super().__init__()
            self.record = {"kind": kind, "model": model_name, "seconds": [], "images": []}
            records.append(self.record)
            self.start = 0.0

        def begin(self, batch: int, logs: dict | None = None) -> None:
            self.start = time.perf_counter()

        def end(self, batch: int, logs: dict | None = None) -> None:
            self.record["seconds"].append(time.perf_counter() - self.start)
            outputs = (logs or {}).get("outputs")
            self.record["images"].append(int(np.shape(outputs)[0]) if outputs is not None else None)

        on_train_batch_begin = on_predict_batch_begin = begin
        on_train_batch_end = on_predict_batch_end = end

    fit, predict = keras.Model.fit, keras.Model.predict

    def timed_fit(self: keras.Model, *a: Any, callbacks: list | None = None, **k: Any) -> Any:
        return fit(self, *a, callbacks=[*(callbacks or []), BatchTimer("fit", self.name)], **k)

    def timed_predict(self: keras.Model, *a: Any, callbacks: list | None = None, **k: Any) -> Any:
        return predict(self, *a, callbacks=[*(callbacks or []), BatchTimer("predict", self.name)], **k)

    keras.Model.fit, keras.Model.predict = timed_fit, timed_predict  # type: ignore[method-assign]
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        out.write_text(json.dumps(records))


def memory_probe(model_name: str, batch: int, steps: int, policy: str = "float32") -> None:
    """Train the model on random 224x224 tensors (first step untimed) under the Keras precision
    `policy`; print its images/s (and on a GPU its peak memory there) as JSON."""
    from breakhis.pipeline.logs import quiet_native_logs
    from commands.gpu_check import images_per_second, model_builder

    quiet_native_logs()
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    keras.mixed_precision.set_global_policy(policy)
    measured = {"images_per_s": images_per_second(model_builder(model_name, SIZE), batch, SIZE, steps)}
    if gpus:  # the device's own peak: what the batch needs of the GPU's memory
        measured["gpu_peak_mib"] = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
    print(json.dumps(measured))


# ---- the benchmark --------------------------------------------------------------------------------


def project_params(args: argparse.Namespace, tree: Path, weights: dict[str, Path]) -> dict[str, Any]:
    """The GPU profile on the defaults, with the dry run's changes (see the module's docstring)."""
    changes: dict[str, Any] = {
        "data.path": str(tree),
        "train.steps_per_epoch": args.steps,
        "train.batch_size": args.batch_size,
        "train.min_epochs": 1,
        "train.mixed_precision": args.mixed_precision,  # the profile's true: for a GPU runner
        "models.custom.epochs": 1,
    }
    for name in BACKBONES:
        changes |= {f"models.{name}.epochs": 1, f"models.{name}.head_epochs": 1}
        changes[f"models.{name}.weights"] = str(weights[name])
    flat = {**load_profile(PROFILE).params, **changes}
    return apply(Params().model_dump(mode="json"), flat)


def random_weights(project: Path) -> dict[str, Path]:
    """Weights files of the ImageNet architectures (include_top False), random values, written by a
    child process (this one stays free of TensorFlow)."""
    files = {name: project / f"{name}-notop-random.weights.h5" for name in BACKBONES}
    if not run_stage("weights", project, ["python", "-c", weights_script(files)])["ok"]:
        raise SystemExit(f"could not write the weights files: see {project / 'weights.log'}")
    return files


def weights_script(files: dict[str, Path]) -> str:
    lines = ["import keras"]
    for name, path in files.items():
        builder = {"vgg19": "VGG19", "resnet50": "ResNet50"}[name]
        lines.append(
            f"keras.applications.{builder}(include_top=False, weights=None, input_shape=(*{SIZE}, 3), "
            f"pooling='avg').save_weights({str(path)!r})"
        )
    return "; ".join(lines)


def rows_of(project: Path, name: str) -> int:
    with (project / name).open() as handle:
        return sum(1 for _ in handle) - 1


def rate(record: dict[str, Any], batch: int | None = None) -> tuple[float, int] | None:
    """Images/s over a record's batches after the first, and how many batches that is."""
    seconds = record["seconds"][1:]
    if not seconds:
        return None
    images = [batch or n or 0 for n in record["images"][1:]]
    return sum(images) / sum(seconds), len(seconds)


def stage_row(stage: str, result: dict[str, Any], images: int, what: str) -> dict[str, Any]:
    return {
        "stage": stage,
        "images": images,
        "wall_s": round(result["wall_s"], 1),
        "peak_mib": round(result["tree_mib"]),
        "images_per_s": f"{images / result['wall_s']:.1f}",
        "basis": what,
    }


def run_pipeline(args: argparse.Namespace, project: Path, tree: Path) -> list[dict[str, Any]]:
    weights = random_weights(project)
    params = project_params(args, tree, weights)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rows: list[dict[str, Any]] = []

    def stage(name: str, module: str, *extra: str, timed: bool = False) -> dict[str, Any]:
        timings = project / f"{name}-{TIMINGS}"
        if timed:
            command = ["python", str(Path(__file__).resolve()), "--timed", str(timings), module, *extra]
        else:
            command = ["python", "-m", module, *extra]
        result = run_stage(name, project, command)
        result["timings"] = json.loads(timings.read_text()) if timed and timings.exists() else []
        print(f"{name}: {json.dumps({k: v for k, v in result.items() if k != 'timings'})}", file=sys.stderr)
        if not result["ok"]:
            raise SystemExit(f"{name} failed: see {project / (name + '.log')}")
        return result

    raw = sum(1 for _ in tree.rglob("*.png"))
    rows.append(stage_row("ingest", stage("ingest", "stages.ingest"), raw, "raw images read / wall"))
    ingested = (
        rows_of(project, "data/ingested/manifest.csv")
        if (project / "data/ingested/manifest.csv").exists()
        else raw
    )
    rows.append(stage_row("split", stage("split", "stages.split"), ingested, "ingested images / wall"))
    rows.append(stage_row("augment", stage("augment", "stages.augment"), ingested, "ingested images / wall"))
    train_images, val_images = (
        rows_of(project, "data/augmented/train.csv"),
        rows_of(project, "data/split/val.csv"),
    )
    test_images = rows_of(project, "data/split/test.csv")
    for name in MODEL_NAMES:
        result = stage(f"train-{name}", "stages.train", name, timed=True)
        fits = [r for r in result["timings"] if r["kind"] == "fit"]
        phases = ["phase 1 (frozen backbone)", "phase 2 (fine-tuning)"] if name in BACKBONES else ["training"]
        rates = [rate(r, args.batch_size) for r in fits]
        text = "; ".join(
            f"{phase} {r[0]:.1f}" for phase, r in zip(phases, rates, strict=False) if r is not None
        )
        steps = "+".join(str(len(r["seconds"])) for r in fits)
        row = stage_row(f"train-{name}", result, len(fits) * args.steps * args.batch_size, "")
        row["images_per_s"] = text
        row["basis"] = (
            f"{steps} batches of {args.batch_size} (the first of each phase untimed); "
            f"the {val_images:,} validation images predicted after each of the {len(fits)} epochs and once "
            "more for the kept model"
        )
        rows.append(row)
    result = stage("evaluate", "stages.evaluate", timed=True)
    per_model = {}
    for record in result["timings"]:
        if record["kind"] == "predict" and (measured := rate(record)):
            seen = per_model.setdefault(record["model"], [0.0, 0.0])
            images = sum(n or 0 for n in record["images"][1:])
            seen[0], seen[1] = seen[0] + images, seen[1] + images / measured[0]
    row = stage_row("evaluate", result, test_images, "")
    row["images_per_s"] = "; ".join(f"{m} {n / s:.1f}" for m, (n, s) in sorted(per_model.items()) if s)
    row["basis"] = (
        "inference per model (batches after each call's first); the stage "
        f"{test_images / result['wall_s']:.1f} test images / wall (validation {val_images:,} images too)"
    )
    rows.append(row)
    files = sorted(tree.rglob("*.png"))
    chosen = [files[i] for i in np.random.default_rng(0).permutation(len(files))[: args.predict]]
    listing = project / "predict-inputs.csv"
    listing.write_text("path\n" + "".join(f"{path}\n" for path in chosen))
    result = stage(
        "predict", "commands.predict", str(listing), "--out", str(project / "predict.csv"), "--quiet"
    )
    rows.append(stage_row("predict", result, len(chosen), "raw 700x460 images, every model / wall"))
    print(f"train split after augment {train_images:,}, validation {val_images:,}, test {test_images:,}")
    return rows


def run_memory(args: argparse.Namespace, project: Path) -> list[dict[str, Any]]:
    train = Params().train.model_copy(update={"image_size": SIZE, "input": "field"})
    models = Params().models
    rows = []
    for name in MODEL_NAMES:
        for batch in args.memory_batches:
            command = [
                "python",
                str(Path(__file__).resolve()),
                "--probe",
                name,
                str(batch),
                str(args.memory_steps),
                "mixed_float16" if args.mixed_precision else "float32",
            ]
            result = run_stage(f"memory-{name}-{batch}", project, command)
            log = (project / f"memory-{name}-{batch}.log").read_text().strip().splitlines()
            measured = json.loads(log[-1]) if result["ok"] and log else {"images_per_s": float("nan")}
            own = models.of(name)
            own = own if name == "custom" else own.model_copy(update={"weights": "imagenet"})
            estimate = training_memory(train.model_copy(update={"batch_size": batch}), own, name)
            rows.append(
                {
                    "model": name,
                    "batch": batch,
                    "cpu_peak_mib": round(result["process_mib"]) if result["ok"] else "failed",
                    "cpu_images_per_s": f"{measured['images_per_s']:.1f}",
                    "projected_gb": f"{estimate.total / GB:.1f}",
                }
            )
            if "gpu_peak_mib" in measured:  # on a GPU: its memory, float32 as the projection
                rows[-1]["gpu_peak_mib"] = round(measured["gpu_peak_mib"])
            print(f"memory {name} batch {batch}: {rows[-1]}", file=sys.stderr)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder; its tree is reused")
    parser.add_argument("--scale", type=float, default=1.0, help="dataset size, relative to the real one")
    parser.add_argument("--pool", type=int, default=0, help="renders per patient and magnification; 0: all")
    parser.add_argument("--steps", type=int, default=4, help="train.steps_per_epoch: batches per epoch")
    parser.add_argument("--batch-size", type=int, default=32, help="train.batch_size (default 32)")
    parser.add_argument("--predict", type=int, default=300, help="raw images for predict (default 300)")
    parser.add_argument("--memory-batches", type=int, nargs="*", default=[32, 64], help="default 32 64")
    parser.add_argument("--memory-steps", type=int, default=2, help="timed steps per memory probe")
    parser.add_argument(
        "--mixed-precision",
        action="store_true",
        help="train in mixed precision, as the profile does on a GPU (default: float32, for a CPU)",
    )
    parser.add_argument("--results", type=Path, help="write full_size.csv and full_size_memory.csv here")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--timed", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.add_argument("--probe", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.timed:
        timed_module(Path(args.timed[0]), args.timed[1], args.timed[2:])
        return
    if args.probe:
        memory_probe(args.probe[0], int(args.probe[1]), int(args.probe[2]), *args.probe[3:])
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-full-size-"))
    tree, project = tree_path(workdir, args.scale, args.pool), workdir / "full-size-project"
    start = time.perf_counter()
    try:
        _, _, generation = ensure_tree(tree, args.scale, args.pool)
        shutil.rmtree(project, ignore_errors=True)
        project.mkdir(parents=True)
        rows = run_pipeline(args, project, tree)
        print_table(rows)
        memory = run_memory(args, project) if args.memory_batches else []
        if memory:
            print_table(memory)
        rendered = "reused" if "reused" in generation else f"{generation['seconds']:.0f} s"
        print(f"\nwall time of the benchmark: {time.perf_counter() - start:.0f} s (tree: {rendered})")
        if args.results:
            write_csv(args.results / "full_size.csv", rows)
            if memory:
                write_csv(args.results / "full_size_memory.csv", memory)
        if args.json:
            args.json.write_text(
                json.dumps({"generation": generation, "stages": rows, "memory": memory}, indent=2)
            )
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            for path in [tree, project, *([] if args.workdir else [workdir])]:
                shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
