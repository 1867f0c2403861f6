"""What this machine can hold, checked by `validate_params` (breakhis.pipeline.params_file) where
a stage runs.

`ingest.workers`, `augment.workers` and `train.cpu_replicas` at most WORKERS_PER_CORE x the cores
of this machine, and the memory that the image sizes need (`memory_estimates`: synthetic
generation, ingest, and training each model at its image size x batch size) at most the memory
budget: this machine's memory (its cgroup limit when lower), or BREAKHIS_MEMORY_GB. A size that
cannot fit is refused with its estimate before anything is allocated. The machine is checked
where the stages run, not in the schema (breakhis.pipeline.params): a model's stored params stay
valid on a smaller machine.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from breakhis.pipeline.param_types import MODEL_NAMES, pixel_count, size_text
from breakhis.pipeline.params import Params, ParamsError, SyntheticParams
from breakhis.pipeline.train_params import (
    BackboneParams,
    CustomCNNParams,
    TrainParams,
    fit_key,
    fit_settings,
)

# Estimates are of resident memory, measured on this project's code; they are about right (within
# some 30%), not bounds: the budget refuses sizes that cannot fit, it does not promise that the
# others will.

WORKERS_PER_CORE = 4  # workers and CPU replicas per core: beyond, more only multiplies memory
MEMORY_VARIABLE = "BREAKHIS_MEMORY_GB"  # the memory budget in GB, instead of this machine's memory
UNKNOWN_MACHINE_MEMORY = 16e9  # the budget where the machine's memory cannot be read
GB = 1e9

TENSORFLOW_BYTES = 0.8e9  # a training process with its model built, before the first batch (0.7-0.85 GB)
PYTHON_BYTES = 0.1e9  # a data stage's process: Python, NumPy, OpenCV
SYNTHETIC_BYTES_PER_PIXEL = 110  # rendering one synthetic image: float32 maps (90-110 B measured)
RAW_BYTES_PER_PIXEL = 6  # ingest: a decoded raw image and its RGB copy
INGEST_BYTES_PER_PIXEL = {"none": 6, "macenko": 160}  # resized image and PNG; Macenko's float64 maps (147 B)
BREAKHIS_PIXELS = 460 * 700  # a raw image of a real source
PATCH_SHUFFLE = 8192  # patches held for shuffling: breakhis.modeling.input_pipeline.SHUFFLE_LIMIT
# The backbones: float32 activations per input pixel that a training step keeps for backpropagation
# (the layers' outputs, counted with Keras: a test checks them) and parameters (x4 in training:
# weights, gradients and Adam's two moments). VGG19 from scratch has BatchNorm after every convolution.
BACKBONE_SIZES = {
    ("vgg19", "none"): (922.0, 20_040_896),
    ("vgg19", "pretrained"): (330.0, 20_024_384),
    ("resnet50", "none"): (742.0, 23_587_712),
    ("resnet50", "pretrained"): (742.0, 23_587_712),
}


def custom_cnn_size(filters: list[int], batch_norm: bool) -> tuple[float, int]:
    """Activations per input pixel and parameters of breakhis.modeling.architectures.build_custom_cnn."""
    activations, parameters, channels = 6.0, filters[-1] + 1, 3  # input and rescaled copy; the head
    for block, width in enumerate(filters):
        per_pixel = width * (3 if batch_norm else 2) + width / 4  # convolution, [BatchNorm,] ReLU, pool
        activations += per_pixel / 4**block  # each block sees a quarter of the pixels
        parameters += 9 * channels * width + (4 * width if batch_norm else width)
        channels = width
    return activations, parameters


@dataclass(frozen=True)
class MemoryEstimate:
    """What one process of a stage needs for one size (bytes), and the keys that set it."""

    keys: str  # the keys to change, e.g. "train.image_size and train.batch_size"
    task: str  # e.g. "training resnet50 on 64x64 images, 32 per batch"
    parts: dict[str, float]

    @property
    def total(self) -> float:
        return sum(self.parts.values())

    def describe(self) -> str:
        parts = ", ".join(f"{name} {_gb(size)}" for name, size in self.parts.items())
        return f"{self.task} needs about {_gb(self.total)} ({parts})"


def _gb(size: float) -> str:
    return f"{size / GB:,.1f} GB" if size >= 0.1 * GB else f"{size / 1e6:.0f} MB"


def cores() -> int:
    return os.cpu_count() or 1


def training_memory(train: TrainParams, own: CustomCNNParams | BackboneParams, name: str) -> MemoryEstimate:
    """Training the named model (`own`: its section of `models`): its weights and optimizer state, the
    activations of one batch at the model's image size, the input batches in flight, and the patch
    shuffle buffer."""
    settings = fit_settings(train, own)
    pixels = pixel_count(settings.image_size)
    batch = settings.batch_size * max(1, train.cpu_replicas)  # every replica holds its own batch
    if isinstance(own, CustomCNNParams):
        activations, parameters = custom_cnn_size(own.filters, own.batch_norm)
    else:
        activations, parameters = BACKBONE_SIZES[name, "none" if own.weights == "none" else "pretrained"]
    parts = {
        "TensorFlow": TENSORFLOW_BYTES,
        "weights and optimizer": 16.0 * parameters,
        "activations": 4.0 * activations * batch * pixels,
        "input batches": 4 * batch * pixels * 3 * 4.0,  # float32, prefetched, augmented copies
    }
    if train.input == "patches":
        parts["patch shuffle buffer"] = (PATCH_SHUFFLE + settings.patches_per_image) * pixels * 3.0
    keys = f"{fit_key(own, name, 'image_size')} and {fit_key(own, name, 'batch_size')}"
    if isinstance(own, CustomCNNParams) and own.filters != CustomCNNParams().filters:
        keys = keys.replace(" and ", ", ") + f" and models.{name}.filters"
    task = f"training {name} on {size_text(settings.image_size)} images, {batch} per batch"
    return MemoryEstimate(keys, task, parts)


def ingest_memory(params: Params) -> MemoryEstimate:
    """Ingest: each worker thread decodes a raw image and resizes (and stain-normalises) it."""
    workers = params.ingest.workers or cores()
    synthetic = params.data.source == "synthetic"
    raw = pixel_count(params.data.synthetic.image_size) if synthetic else BREAKHIS_PIXELS
    size = params.ingest.image_size
    per_image = RAW_BYTES_PER_PIXEL * raw + INGEST_BYTES_PER_PIXEL[
        params.ingest.stain_normalization
    ] * pixel_count(size)
    parts = {"Python": PYTHON_BYTES, f"{workers} workers": workers * per_image}
    return MemoryEstimate("ingest.image_size", f"ingesting at {size_text(size)} on {workers} workers", parts)


def synthetic_memory(synthetic: SyntheticParams) -> MemoryEstimate:
    """Generating the synthetic dataset: one image at a time."""
    size = synthetic.image_size
    parts = {"Python": PYTHON_BYTES, "one image": SYNTHETIC_BYTES_PER_PIXEL * float(pixel_count(size))}
    return MemoryEstimate("data.synthetic.image_size", f"generating {size_text(size)} images", parts)


def memory_estimates(params: Params) -> list[MemoryEstimate]:
    """Every process the params size: generation (synthetic source), ingest, each model's training."""
    estimates = [synthetic_memory(params.data.synthetic)] if params.data.source == "synthetic" else []
    estimates.append(ingest_memory(params))
    return estimates + [training_memory(params.train, params.models.of(name), name) for name in MODEL_NAMES]


def machine_memory() -> float | None:
    """This machine's memory in bytes (its cgroup's limit when lower); None when unknown."""
    total: float | None = None
    with contextlib.suppress(AttributeError, ValueError, OSError):  # not POSIX
        total = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit():  # cgroup v2 says "max" when unlimited
            total = min(total, float(text)) if total else float(text)
    return total


def memory_budget() -> tuple[float, str]:
    """The memory a stage may plan for, in bytes, and where that figure comes from."""
    text = os.environ.get(MEMORY_VARIABLE, "").strip()
    if text:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise ParamsError(
                f"{MEMORY_VARIABLE}={text!r}: expected the memory budget in GB, a number above 0"
            )
        return value * GB, f"set by {MEMORY_VARIABLE}"
    found = machine_memory()
    if found is None:
        return UNKNOWN_MACHINE_MEMORY, f"this machine's memory is unknown; set {MEMORY_VARIABLE}"
    return found, f"this machine's memory; {MEMORY_VARIABLE} sets another"


def machine_problems(params: Params) -> list[tuple[str, str]]:
    """(key, problem) for each value this machine cannot run: workers or CPU replicas beyond
    WORKERS_PER_CORE per core, and sizes whose memory estimate exceeds the budget."""
    problems = []
    cap = WORKERS_PER_CORE * cores()
    for key, value, zero in (
        ("ingest.workers", params.ingest.workers, "0 = one thread per core"),
        ("augment.workers", params.augment.workers, "0 = one process per core"),
        ("train.cpu_replicas", params.train.cpu_replicas, "0 = no mirroring"),
    ):
        if value > cap:
            problems.append(
                (
                    key,
                    f"{value} is above {WORKERS_PER_CORE} x the {cores()} cores of this machine ({cap}): "
                    f"more only multiplies memory ({zero})",
                )
            )
    budget, origin = memory_budget()
    for estimate in memory_estimates(params):
        if estimate.total > budget:
            problems.append(
                (
                    estimate.keys,
                    f"{estimate.describe()}, over the memory budget of {_gb(budget)} ({origin})",
                )
            )
    return problems
