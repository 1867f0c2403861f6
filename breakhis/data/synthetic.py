"""Deterministic synthetic BreaKHis_v1 dataset (real layout and file-name grammar).

The class is in the morphology and not in the colour: a CNN that looks at nuclei and their
arrangement can learn it, a colour histogram with a linear model cannot (ROC AUC near 0.5 under a
patient-grouped split; tests/test_synthetic.py checks both).

Generative model (all randomness from ``np.random.SeedSequence`` keys: one seed, the same bytes):
  * Patients (slide folders). Subtypes go round-robin within each class. One numeric slide root
    per 8 patients of a class holds 2-3 suffixed slides, as 22549AB / 22549CD / 22549G in
    BreakHis: same class and year, any subtype of the class. Images per magnification differ
    between patients (a lognormal patient weight times a per-magnification factor, at least one
    each); every class has exactly ``patients x images_per_magnification`` per magnification.
  * Stain, drawn independently per patient from ONE distribution for both classes: hematoxylin
    and eosin optical-density vectors, stain strengths, white balance and brightness, blur, noise.
    Patients differ far more in colour than the classes do (not at all by construction), so a
    split by image leaks each patient's look and a split by patient does not.
  * Composition, per image and from ONE distribution for both classes: the share of white space
    (lumens, vacuoles, clefts) and of nuclear area, which each class's painter fills (measured on
    the canvas). Then the white-space, nuclear-hematoxylin and cytoplasm maps are rank-matched to
    fixed profiles of these budgets: every image's stain-density histograms are the same function
    of the budgets whatever its class, and only where the densities lie differs. No
    hyperchromasia: malignant nuclei are as dark as benign ones.
  * Morphology, by class (the class signal; radii at 100X in a 230x350 field):
      benign    -> small (3.1 px), round, uniform nuclei, organised: glands with a lumen ringed by
                   radial luminal nuclei and an outer flat myoepithelial layer, small rosettes,
                   evenly spaced cords along the stroma;
      malignant -> large (median 6.6 px, lognormal, about 5-9 px), pleomorphic nuclei (lobulated
                   irregular outlines, any orientation) crowding and overlapping in disorganised
                   sheets, some scattered single cells, retraction clefts along the sheets.
    Radii grow as ``(mag / 100) ** 0.7`` (40X: small dots that show the architecture) and with
    the image size (the field of view of a 700x460 BreakHis image, whatever the pixel size).
  * Colour by Beer-Lambert, ``rgb = white * exp(-(H * h_od + E * e_od))``: purple nuclei and pale
    cytoplasm over pink, fibrous eosin stroma, in the patient's stain.
  * ``atypical_fraction`` of the fields show the other class's morphology (in the patient's own
    stain), as real slides hold benign-looking fields in a carcinoma and vice versa.

By job: `synthetic_patients` (patients, stains, image counts), `synthetic_drawing` (drawing
primitives, textures, rank matching), `synthetic_tissue` (each subtype's painter, the radii),
`synthetic_rendering` (one image); this module writes the tree, the subtype gallery, and is the
command (`python -m breakhis.data.synthetic OUT_DIR`).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from breakhis.data.images import MAX_PIXELS, write_bgr
from breakhis.data.synthetic_drawing import Shape
from breakhis.data.synthetic_patients import image_counts, make_patients
from breakhis.data.synthetic_rendering import render_image
from breakhis.data.synthetic_tissue import BASE_SIZE
from breakhis.pipeline.cli import command_parser
from breakhis.pipeline.task import SUBTYPES


def write_synthetic_breakhis(
    root: Path,
    *,
    seed: int,
    benign_patients: int,
    malignant_patients: int,
    images_per_magnification: int,
    magnifications: Sequence[int] = (40, 100, 200, 400),
    image_size: tuple[int, int] = BASE_SIZE,
    atypical_fraction: float = 0.0,
) -> Path:
    """Write the tree under root and return the path of the BreaKHis_v1 folder.

    `images_per_magnification`: the mean number of images per patient and magnification (patients
    differ, see synthetic_patients.image_counts). `atypical_fraction`: share of images that show the
    other class's morphology (see synthetic_rendering.render_image). All or nothing: when writing
    fails (a full disk, an error, Ctrl-C or SIGTERM through `run_stage`), the BreaKHis_v1 folder it
    started is removed again.
    """
    height, width = image_size
    if height * width > MAX_PIXELS:
        raise ValueError(
            f"data.synthetic.image_size {height}x{width} is {height * width:,} pixels per image, over the "
            f"{MAX_PIXELS:,} that ingest reads (a BreakHis field is 460x700)"
        )
    dataset = Path(root) / "BreaKHis_v1"
    if dataset.exists():
        raise FileExistsError(f"{dataset}: exists already; write the synthetic dataset into an empty folder")
    breast = dataset / "histology_slides" / "breast"
    patients = make_patients(seed, benign_patients, malignant_patients)
    counts = image_counts(seed, patients, magnifications, images_per_magnification)
    try:
        for patient in patients:
            label, subtype_dir = SUBTYPES[patient.code]
            for mag in magnifications:
                folder = breast / label / "SOB" / subtype_dir / patient.folder / f"{mag}X"
                folder.mkdir(parents=True, exist_ok=True)
                for seq in range(1, counts[patient.index, mag] + 1):
                    path = folder / patient.file_name(mag, seq)
                    image = render_image(patient, mag, seq, seed, image_size, atypical_fraction)
                    write_bgr(path, image)
    except BaseException:
        shutil.rmtree(dataset, ignore_errors=True)
        raise
    return dataset


@contextmanager
def synthetic_breakhis(folder: Path, **options: Any) -> Iterator[Path]:
    """A synthetic BreaKHis_v1 tree written into `folder` (see `write_synthetic_breakhis` for the
    options), yielded, and removed when the block ends however it ends. A leftover `folder` of a
    run that was killed (SIGKILL, out of memory: no cleanup runs then) is removed first, so a
    failed run never leaves a copy of the dataset behind for longer than the next run. The caller
    keeps other runs out of `folder` (ingest holds its output's lock)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    try:
        write_synthetic_breakhis(folder, **options)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def subtype_gallery(
    seed: int = 0, size: Shape = BASE_SIZE, magnifications: Sequence[int] = (40, 100, 400)
) -> np.ndarray:
    """One field of each subtype (columns) per magnification (rows), all in one patient's stain: a
    BGR picture of what tells the synthetic subtypes apart (docs/explanation/synthetic-data.md)."""
    patient = make_patients(seed, 1, 0)[0]
    rows = []
    for mag in magnifications:
        tiles = []
        for code in SUBTYPES:
            tile = render_image(replace(patient, code=code), mag, 1, seed, size)
            cv2.rectangle(tile, (0, 0), (150, 40), (255, 255, 255), -1)
            cv2.putText(tile, f"{code} {mag}X", (6, 31), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (0, 0, 0), 2)
            tiles.append(tile)
        rows.append(np.hstack(tiles))
    return np.vstack(rows)


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: write a synthetic BreaKHis_v1 tree into OUT_DIR, or (--gallery) the subtype picture."""
    parser = command_parser("breakhis.data.synthetic", __doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, nargs="?")
    parser.add_argument(
        "--gallery", type=Path, help="write one field per subtype and magnification here (a .jpg or .png)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--benign-patients", type=int, default=16)
    parser.add_argument("--malignant-patients", type=int, default=22)
    parser.add_argument("--images-per-magnification", type=int, default=3)
    args = parser.parse_args(argv)
    if args.gallery:
        picture = subtype_gallery(args.seed)
        small = cv2.resize(
            picture, (picture.shape[1] // 2, picture.shape[0] // 2), interpolation=cv2.INTER_AREA
        )
        write_bgr(args.gallery, small, [cv2.IMWRITE_JPEG_QUALITY, 85])
        print(f"wrote {args.gallery}")
        return
    if args.out_dir is None:
        parser.error("give OUT_DIR, or --gallery PATH")
    start = time.perf_counter()
    path = write_synthetic_breakhis(
        args.out_dir,
        seed=args.seed,
        benign_patients=args.benign_patients,
        malignant_patients=args.malignant_patients,
        images_per_magnification=args.images_per_magnification,
    )
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
