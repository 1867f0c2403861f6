"""Does ingest use every core? Throughput of the ingest stage's own code (`stages.ingest.ingest`:
scan, decode, check, hash, resize, write, manifest) on full-size 700x460 BreakHis PNGs, as a
ratio of a plain single-process `cv2.imread` + `cv2.resize` loop over the same files. Both are
measured in this run, alternating, on warm files; medians taken. Target: ratio >= 1.6 on 2 cores.
Also prints the peak memory ingest allocates for half and for all of the images (it must not grow).

    python benchmarks/ingest.py [--images 400] [--rounds 3] [--png-compression 0]

The images are the shared sample's 700x460 images (../shared/breakhis-sample), copied into an
official BreaKHis_v1 tree under new names, each made pixel-unique by one stamped pixel; without
the sample, synthetic 700x460 images are used.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402

from breakhis.data.dataset import FILE_NAME, scan_images  # noqa: E402
from breakhis.data.ingestion import Resizing  # noqa: E402
from breakhis.data.synthetic import write_synthetic_breakhis  # noqa: E402
from breakhis.pipeline.params import DataParams, IngestParams, Params  # noqa: E402
from breakhis.pipeline.task import SUBTYPES  # noqa: E402
from stages.ingest import ingest  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "breakhis-sample" / "BreaKHis_v1"
FULL_SIZE = (460, 700)  # height, width
TARGET = (230, 350)


def full_size_tree(root: Path, count: int) -> Path:
    """A BreaKHis_v1 tree of `count` distinct 700x460 PNGs; returns its root."""
    sample = scan_images(SAMPLE) if SAMPLE.is_dir() else []
    sources = [r for r in sample if cv2.imread(r.source).shape[:2] == FULL_SIZE]
    if not sources:
        per_patient = max(1, count // (8 * 4))
        write_synthetic_breakhis(
            root, seed=0, benign_patients=4, malignant_patients=4,
            images_per_magnification=per_patient, image_size=FULL_SIZE,
        )  # fmt: skip
        return root
    breast = root / "BreaKHis_v1" / "histology_slides" / "breast"
    for k in range(count):
        record = sources[k % len(sources)]
        image = cv2.imread(record.source)
        image[0, 0] = (k % 256, k // 256, 255)  # one pixel: distinct pixel hashes, same compressibility
        fields = FILE_NAME.match(record.filename)
        assert fields is not None
        label, subtype_dir = SUBTYPES[record.subtype]
        folder = breast / label / "SOB" / subtype_dir / record.patient / f"{record.magnification}X"
        folder.mkdir(parents=True, exist_ok=True)
        name = record.filename.rsplit("-", 1)[0] + f"-{1000 + k}.png"
        cv2.imwrite(str(folder / name), image)
    return root


Timing = tuple[float, float]  # wall-clock seconds, CPU seconds (all threads of this process)


def baseline(files: list[str]) -> Timing:
    """The plain loop: one process, OpenCV defaults."""
    start, cpu = time.perf_counter(), time.process_time()
    for file in files:
        cv2.resize(cv2.imread(file), TARGET[::-1], interpolation=cv2.INTER_AREA)
    return time.perf_counter() - start, time.process_time() - cpu


def run_ingest(root: Path, params: Params, out: Path) -> Timing:
    """The ingest stage's work on the tree (outputs written under `out`)."""
    previous = Path.cwd()
    os.chdir(out)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        ingest(params, root, Resizing(TARGET, png_compression=params.ingest.png_compression), root)
        return time.perf_counter() - start, time.process_time() - cpu
    finally:
        os.chdir(previous)


def peak_memory(root: Path, params: Params, out: Path) -> float:
    """MiB allocated at the peak of one ingest (Python and NumPy, including decoded images)."""
    tracemalloc.start()
    try:
        run_ingest(root, params, out)
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="0: one per core (the default)")
    parser.add_argument(
        "--png-compression", type=int, default=IngestParams().png_compression, help="ingest.png_compression"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "out").mkdir()
        root = full_size_tree(tmp_path / "raw", args.images)
        files = [r.source for r in scan_images(root)]
        for file in files:  # warm the page cache for both contenders
            Path(file).read_bytes()
        params = Params(
            data=DataParams(source="breakhis", path=str(root)),
            ingest=IngestParams(
                image_size=TARGET, workers=args.workers, png_compression=args.png_compression
            ),
        )
        run_ingest(root, params, tmp_path / "out")  # warm-up (first-use costs, not measured)
        base_times: list[Timing] = []
        ingest_times: list[Timing] = []
        for round_ in range(1, args.rounds + 1):
            base_times.append(baseline(files))
            ingest_times.append(run_ingest(root, params, tmp_path / "out"))
            print(
                f"round {round_}: loop {len(files) / base_times[-1][0]:.1f} img/s, "
                f"ingest {len(files) / ingest_times[-1][0]:.1f} img/s, "
                f"ratio {base_times[-1][0] / ingest_times[-1][0]:.2f}",
                file=sys.stderr,
            )
        half = full_size_tree(tmp_path / "half", len(files) // 2)
        memory = (peak_memory(half, params, tmp_path / "out"), peak_memory(root, params, tmp_path / "out"))
    n = len(files)
    base, ingested = (statistics.median(t[0] for t in times) for times in (base_times, ingest_times))
    base_cpu, ingest_cpu = (statistics.median(t[1] for t in times) for times in (base_times, ingest_times))
    print(f"images:               {n} PNGs, 700x460 -> {TARGET[1]}x{TARGET[0]}, {os.cpu_count()} cores")
    print(f"single-process loop:  {n / base:.1f} img/s, CPU {base_cpu / n * 1000:.1f} ms/img (read, resize)")
    print(
        f"ingest:               {n / ingested:.1f} img/s, CPU {ingest_cpu / n * 1000:.1f} ms/img (all work)"
    )
    print(f"peak memory (ingest): {memory[0]:.1f} MiB for {n // 2} images, {memory[1]:.1f} MiB for {n}")
    print(f"ratio:                {base / ingested:.2f}  (throughput, ingest / loop; target >= 1.6)")


if __name__ == "__main__":
    main()
