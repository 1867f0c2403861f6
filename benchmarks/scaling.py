"""Do the data stages scale to the real BreakHis? Wall time and peak memory of `ingest`, `split` and
`augment` on a synthetic BreakHis of the real size (82 patients: 24 benign, 58 malignant; 7,909
700x460 PNGs, the real per-class and per-magnification counts) and on patient subsets of 1/8, 1/4
and 1/2 of it. Targets: peak memory flat (full / 1/8 <= 1.5), time linear (time per image at full
size within 0.67-1.5x of 1/8). Then what a GPU runner needs to train at 224x224.

    python benchmarks/scaling.py [--fractions 0.125 0.25 0.5 1] [--workdir DIR] [--keep]
                                 [--json PATH] [--scale S] [--pool N]

The tree (official BreaKHis_v1 layout) is rendered once by the project's renderer, one process per
core; --pool N renders N fields per patient and magnification and writes the rest as copies (0:
every image rendered). Every file gets one stamped pixel (ingest drops pixel-identical twins). With
--workdir and --keep the tree is reused next time. --scale S shrinks patients and images to S of
the real size (>= 8 patients per class). Subsets are whole patient groups (slide roots, as split
groups them; >= 4 per class so every split gets both classes) in one seeded order per class, to
about the fraction of each class's images: nested, class-balanced, hard links into the full tree.

Each stage runs as DVC runs it: `python -m stages.<name>` in a fresh project folder per fraction
(params.yaml: data.source breakhis, data.path the subset, magnifications 40-400, the rest default),
PATH with the venv's bin first, files in the page cache. Peak memory: the summed RSS of the stage
process and all its descendants (ingest's threads, augment's workers), sampled every 50 ms with
psutil (shared pages count once per process), and the largest single process's peak. GPU runner,
from the largest fraction: cache sizes at 224x224, ingested PNG bytes, single-core decode rate
(cv2.imread + resize to 224x224 of 300 ingested PNGs, median of 3 rounds), hence the CPU cores per
GPU needed at ASSUMED GPU training rates.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # type: ignore[import-untyped]  # noqa: E402
import yaml  # noqa: E402

from breakhis.data.dataset import MAGNIFICATIONS  # noqa: E402
from breakhis.data.synthetic_patients import Patient, apportion, make_patients  # noqa: E402
from breakhis.data.synthetic_rendering import render_image  # noqa: E402
from breakhis.pipeline.task import SUBTYPES  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin").is_dir() else Path(sys.executable).parent
SEED, SIZE = 0, (460, 700)  # (height, width) of every BreakHis image
PATIENTS = {"benign": 24, "malignant": 58}
IMAGES = {  # the real BreakHis per class and magnification: 1995 / 2081 / 2013 / 1820 = 7,909
    "benign": {40: 625, 100: 644, 200: 623, 400: 588},
    "malignant": {40: 1370, 100: 1437, 200: 1390, 400: 1232},
}
MIN_PATIENTS, MIN_GROUPS = 8, 4  # per class: the --scale floor; the subset floor (3 can leave val one-class)
STAGES = ("ingest", "split", "augment")
GPU_RATES = (1000, 2500)  # ASSUMED img/s of one data-centre GPU: ResNet50, 224x224, mixed precision
CACHE_AUTO_LIMIT = 2 * 1024**3  # train.cache auto: CACHE_LIMIT_BYTES of breakhis/modeling/input_pipeline.py
PIXELS, MIB, GIB = 224 * 224 * 3, 2**20, 2**30
Plan = dict[tuple[int, int], int]  # (patient index, magnification) -> images
Run = dict[str, Any]  # one fraction's results


def plan_dataset(scale: float) -> tuple[list[Patient], Plan]:
    """Patients and image counts: a lognormal weight per patient, the real totals x `scale`."""
    benign, malignant = (max(MIN_PATIENTS, round(n * scale)) for n in PATIENTS.values())
    patients = make_patients(SEED, benign, malignant)
    rng = np.random.default_rng(SEED)
    weight = rng.lognormal(0, 0.7, len(patients))
    plan: Plan = {}
    for mag in MAGNIFICATIONS:
        factor = weight * rng.lognormal(0, 0.25, len(patients))
        for label, counts in IMAGES.items():
            members = [p.index for p in patients if p.label == label]
            split = apportion(max(len(members), round(counts[mag] * scale)), factor[members])
            plan.update({(i, mag): int(n) for i, n in zip(members, split, strict=True)})
    return patients, plan


def folder(tree: Path, patient: Patient, mag: int) -> Path:
    label, subtype_dir = SUBTYPES[patient.code]
    breast = tree / "BreaKHis_v1" / "histology_slides" / "breast"
    return breast / label / "SOB" / subtype_dir / patient.folder / f"{mag}X"


def write_field(job: tuple[Patient, int, int, list[tuple[str, int]]]) -> int:
    """Render one field; write it under each of its file names, each with its own stamped pixel."""
    patient, mag, field, copies = job
    image = render_image(patient, mag, field, SEED, SIZE)
    for path, stamp in copies:
        image[0, 0] = (stamp % 256, stamp // 256, 255)
        if not cv2.imwrite(path, image):
            raise OSError(f"could not write {path}")
    return len(copies)


def generate(tree: Path, patients: list[Patient], plan: Plan, pool: int) -> dict[str, Any]:
    jobs, stamp = [], 0
    for patient in patients:
        for mag in MAGNIFICATIONS:
            (out := folder(tree, patient, mag)).mkdir(parents=True, exist_ok=True)
            fields: dict[int, list[tuple[str, int]]] = {}
            for seq in range(1, plan[patient.index, mag] + 1):
                field = (seq - 1) % pool + 1 if pool else seq
                fields.setdefault(field, []).append((str(out / patient.file_name(mag, seq)), stamp))
                stamp += 1
            jobs += [(patient, mag, field, copies) for field, copies in fields.items()]
    start, workers = time.perf_counter(), os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(workers) as processes:
        images = sum(processes.imap_unordered(write_field, jobs, chunksize=4))
    seconds = time.perf_counter() - start
    return {"images": images, "renders": len(jobs), "workers": workers, "seconds": seconds}


def subset(patients: list[Patient], plan: Plan, fraction: float) -> list[Patient]:
    """Per class, the first patient groups (numeric slide roots: 22549AB -> 22549) of one seeded order
    that hold nearest `fraction` of the class's images, at least MIN_GROUPS."""
    groups: dict[tuple[str, int, str], list[Patient]] = {}
    for p in patients:
        groups.setdefault((p.label, p.year, re.sub(r"\D+$", "", p.slide)), []).append(p)
    rng, chosen = np.random.default_rng(SEED), []
    for label in PATIENTS:
        of_class = [group for key, group in sorted(groups.items()) if key[0] == label]
        ordered = [of_class[i] for i in rng.permutation(len(of_class))]
        images = np.cumsum([sum(plan[p.index, m] for p in g for m in MAGNIFICATIONS) for g in ordered])
        nearest = int(np.argmin(np.abs(images - fraction * images[-1]))) + 1
        chosen += [p for g in ordered[: max(nearest, min(MIN_GROUPS, len(ordered)))] for p in g]
    return chosen


def link_tree(full: Path, tree: Path, patients: list[Patient]) -> None:
    shutil.rmtree(tree, ignore_errors=True)
    for patient in patients:
        for mag in MAGNIFICATIONS:
            (target := folder(tree, patient, mag)).mkdir(parents=True)
            for file in folder(full, patient, mag).iterdir():
                try:
                    os.link(file, target / file.name)
                except OSError:  # no hard links on this file system
                    (target / file.name).symlink_to(file)


def tree_rss(main: psutil.Process) -> list[int]:
    """RSS of the process and of each of its descendants alive at this moment."""
    rss = []
    with contextlib.suppress(psutil.Error):
        for process in [main, *main.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):  # ended between listing and reading
                rss.append(process.memory_info().rss)
    return rss


def run_stage(stage: str, project: Path, command: list[str] | None = None) -> dict[str, Any]:
    """`python -m stages.<stage>` (or `command`) in `project`, as DVC runs it, with this checkout's
    `stages` first on the path (not whichever the environment installed): wall time, peak RSS (MiB)."""
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "DVC_NO_ANALYTICS": "1",
    }
    log_file, tree_peak, process_peak = project / f"{stage}.log", 0, 0
    with log_file.open("w") as log:
        start = time.perf_counter()
        command = command or ["python", "-m", f"stages.{stage}"]
        proc = subprocess.Popen(command, cwd=project, env=env, stdout=log, stderr=log)
        main = psutil.Process(proc.pid)
        while True:
            rss = tree_rss(main)
            tree_peak, process_peak = max(tree_peak, sum(rss)), max([process_peak, *rss])
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=0.05)
                break
        wall = time.perf_counter() - start
    if proc.returncode:
        print(f"{stage} failed:\n{log_file.read_text()[-2000:]}", file=sys.stderr)
    peaks = {"tree_mib": tree_peak / MIB, "process_mib": process_peak / MIB}
    return {"ok": not proc.returncode, "wall_s": wall, **peaks}


def run_fraction(fraction: float, chosen: list[Patient], plan: Plan, tree: Path, work: Path) -> Run:
    """Ingest, split and augment the patients `chosen` in a fresh project folder."""
    subtree, project = work / "subsets" / f"f{fraction:g}", work / "projects" / f"f{fraction:g}"
    link_tree(tree, subtree, chosen)
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)
    data = {"source": "breakhis", "path": str(subtree), "magnifications": list(MAGNIFICATIONS)}
    (project / "params.yaml").write_text(yaml.safe_dump({"data": data}))
    images = sum(plan[p.index, m] for p in chosen for m in MAGNIFICATIONS)
    run: Run = {"fraction": fraction, "patients": len(chosen), "images": images, "stages": {}}
    for stage in STAGES:
        run["stages"][stage] = result = run_stage(stage, project)
        print(f"fraction {fraction:g}, {images} images, {stage}: {result}", file=sys.stderr)
        if not result["ok"]:
            break
    return run


def print_scaling(runs: list[Run]) -> None:
    print(f"| fraction | patients | images | {' | '.join(f'{s} s | {s} MiB' for s in STAGES)} |")
    print("|" + "---:|" * (3 + 2 * len(STAGES)))
    for run in runs:
        stages = run["stages"].values()
        cells = [f"{s['wall_s']:.1f} | {s['tree_mib']:.0f}" if s["ok"] else "failed | -" for s in stages]
        cells += ["- | -"] * (len(STAGES) - len(cells))
        print(f"| {run['fraction']:g} | {run['patients']} | {run['images']} | {' | '.join(cells)} |")
    print("\n| stage | s / 1000 images, by fraction | fit: fixed s + s / 1000 images | time per image, "
          "largest:smallest | peak MiB, largest:smallest | largest process MiB |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|")
    flat, linear = [], []
    for stage in STAGES:
        done = [(r["images"], r["stages"][stage]) for r in runs if r["stages"].get(stage, {}).get("ok")]
        if len(done) < max(2, len(runs)):
            print(f"| {stage} | not measured at every fraction | | | | |")
            continue
        per = [s["wall_s"] / n * 1000 for n, s in done]
        slope, fixed = np.polyfit([n for n, _ in done], [s["wall_s"] for _, s in done], 1)
        time_ratio, memory_ratio = per[-1] / per[0], done[-1][1]["tree_mib"] / done[0][1]["tree_mib"]
        largest = max(s["process_mib"] for _, s in done)
        print(f"| {stage} | {' / '.join(f'{p:.2f}' for p in per)} | {fixed:.1f} + {slope * 1000:.2f} "
              f"| {time_ratio:.2f} | {memory_ratio:.2f} | {largest:.0f} |")  # fmt: skip
        flat.append(f"{stage} {'yes' if memory_ratio <= 1.5 else 'NO'} ({memory_ratio:.2f})")
        shape = "yes" if 0.67 <= time_ratio <= 1.5 else "NO, superlinear" if time_ratio > 1.5 else "sublinear"
        linear.append(f"{stage} {shape} ({time_ratio:.2f})")
    print(f"\nmemory flat (full/eighth <= 1.5): {', '.join(flat)}")
    print(f"time linear (time per image at full size within 0.67-1.5x of 1/8): {', '.join(linear)}")
    print("(largest vs smallest fraction run; sublinear: a fixed start-up cost, e.g. imports, dominates)")


def gpu_runner(project: Path, fraction: float) -> dict[str, Any]:
    """Cache sizes, ingested PNG bytes and single-core decode rate of a finished project; printed."""
    files = sorted((project / "data" / "ingested" / "images").glob("*.png"))
    with (project / "data" / "augmented" / "train.csv").open() as rows:
        n, train, png_bytes = len(files), sum(1 for _ in rows) - 1, sum(f.stat().st_size for f in files)
    sample = [str(files[i]) for i in np.random.default_rng(SEED).permutation(n)[:300]]
    for file in sample:
        Path(file).read_bytes()  # warm the page cache
    cv2.setNumThreads(1)  # one core
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for file in sample:
            cv2.resize(cv2.imread(file), (224, 224), interpolation=cv2.INTER_AREA)  # type: ignore[arg-type]
        rounds.append(time.perf_counter() - start)
    rate = len(sample) / statistics.median(rounds)
    cores = {str(gpu_rate): gpu_rate / rate for gpu_rate in GPU_RATES}
    counts, dtypes = {"all": n, "train": train}, {"uint8": 1, "float32": 4}
    cache = {f"{k}_{d}": c * PIXELS * b / GIB for k, c in counts.items() for d, b in dtypes.items()}
    auto = "yes" if cache["train_float32"] * GIB <= CACHE_AUTO_LIMIT else "no"
    print(f"\nGPU runner (fraction {fraction:g}: {n} ingested images, {train} train rows after split and "
          f"augment; x{7909 / n:.2f} for the real 7,909 images)")  # fmt: skip
    print("cache at 224x224, GiB: " + ", ".join(f"{k} {v:.2f}" for k, v in cache.items())
          + f" (train.cache: auto, float32 below 2 GiB, caches the train split: {auto})")  # fmt: skip
    print(f"ingested PNGs on disk: {png_bytes / GIB:.2f} GiB, {png_bytes / n / 1024:.0f} KiB each")
    print(f"decode: {rate:.0f} images/s per CPU core (cv2.imread + resize to 224x224, one process)")
    for gpu_rate, needed in cores.items():
        print(f"  ASSUMED {gpu_rate} img/s per GPU (ResNet50, 224x224, mixed precision): {needed:.1f} cores")
    print("  (without a cache every epoch decodes; with train.cache in memory only epoch 1 decodes)")
    return {"images": n, "train_rows": train, "png_bytes": png_bytes, "cache_gib": cache,
            "decode_per_core": rate, "cores_per_gpu": cores}  # fmt: skip


def tree_path(workdir: Path, scale: float, pool: int) -> Path:
    return workdir / f"breakhis-scale{scale:g}-pool{pool}"


def ensure_tree(tree: Path, scale: float, pool: int) -> tuple[list[Patient], Plan, dict[str, Any]]:
    """The synthetic tree at `scale`, rendered unless a finished one is there; printed."""
    patients, plan = plan_dataset(scale)
    if (marker := tree / "generated.json").exists():
        generation = {**json.loads(marker.read_text()), "reused": True}
    else:
        shutil.rmtree(tree, ignore_errors=True)
        generation = generate(tree, patients, plan, pool)
        marker.write_text(json.dumps(generation))
    g, reused = generation, " (reused)" if "reused" in generation else ""
    print(f"tree {tree}{reused}: {g['images']} images, {g['renders']} renders, {g['seconds']:.0f} s on "
          f"{g['workers']} workers, {g['seconds'] / g['images'] * 1000:.0f} ms/image")  # fmt: skip
    return patients, plan, generation


def benchmark(args: argparse.Namespace, workdir: Path, tree: Path) -> None:
    patients, plan, generation = ensure_tree(tree, args.scale, args.pool)
    runs = [run_fraction(f, subset(patients, plan, f), plan, tree, workdir) for f in sorted(args.fractions)]
    print_scaling(runs)
    last, gpu = runs[-1], None
    if last["stages"].get("augment", {}).get("ok"):
        gpu = gpu_runner(workdir / "projects" / f"f{last['fraction']:g}", last["fraction"])
    if args.json:
        results = {"scale": args.scale, "pool": args.pool, "generation": generation, "runs": runs, "gpu": gpu}
        args.json.write_text(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.125, 0.25, 0.5, 1.0])
    parser.add_argument("--workdir", type=Path, help="default: a temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the work folder; its tree is reused")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--scale", type=float, default=1.0, help="dataset size, relative to the real one")
    parser.add_argument("--pool", type=int, default=0, help="renders per patient and magnification; 0: all")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    tree = tree_path(workdir, args.scale, args.pool)
    try:
        benchmark(args, workdir, tree)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            made = [tree, workdir / "subsets", workdir / "projects", *([] if args.workdir else [workdir])]
            for path in made:
                shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
