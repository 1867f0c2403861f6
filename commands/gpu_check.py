"""Command: the five-minute check of a training runner, before its first real run.

    python3 run.py gpu-check [--steps 200] [--cpu-steps 3] [--batch-size 32] [--size 224 224]

Says whether TensorFlow sees a GPU (or that none was found: then every figure is the CPU's), runs a
training step under mixed precision and one compiled with XLA, runs the multi-device path
(`tf.distribute.MirroredStrategy` over the GPUs, or over two logical CPUs as `train.cpu_replicas`
does), and prints the images per second of each model training on random tensors at the given
size: on the GPU (mixed precision, as profiles/gpu-imagenet.yaml trains) and on the CPU beside it.
The backbones are the architectures the ImageNet weights fit, with random weights (nothing is
downloaded). Reads and writes no file of the project.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from breakhis.pipeline.cli import command_parser
from breakhis.pipeline.logs import quiet_native_logs

CPU_REPLICAS = 2  # the logical CPUs of the multi-device check without GPUs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = command_parser("commands.gpu_check", __doc__)
    parser.add_argument("--steps", type=int, default=200, help="timed training steps on a GPU (default 200)")
    parser.add_argument(
        "--cpu-steps", type=int, default=3, help="timed training steps on the CPU (default 3: it is slow)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="images per step (default 32)")
    parser.add_argument(
        "--size", type=int, nargs=2, default=[224, 224], metavar=("HEIGHT", "WIDTH"), help="default 224 224"
    )
    args = parser.parse_args(argv)
    for option, value, least in (
        ("--steps", args.steps, 1),
        ("--cpu-steps", args.cpu_steps, 1),
        ("--batch-size", args.batch_size, 1),
        ("--size", min(args.size), 32),
    ):
        if value < least:
            raise ValueError(f"{option}: {value} is below {least}")
    return args


def model_builder(name: str, size: tuple[int, int]) -> Callable:
    """A function building the named model as training builds it, with random weights."""
    import keras

    from breakhis.modeling.architectures import BACKBONES, build_custom_cnn, output_layer

    def build() -> keras.Model:
        if name == "custom":
            return build_custom_cnn(size, [16, 32, 64, 128], 0.3, True)
        inputs = keras.Input((*size, 3))
        backbone = BACKBONES[name](include_top=False, weights=None, input_shape=(*size, 3), pooling="avg")
        return keras.Model(inputs, output_layer(1)(backbone(inputs)), name=name)

    return build


def images_per_second(
    build: Callable, batch: int, size: tuple[int, int], steps: int, **compile_args: bool
) -> float:
    """Training steps of a freshly built model on random tensors; the first (tracing) is not timed."""
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, *size, 3)).astype("float32")
    y = rng.integers(0, 2, (batch, 1)).astype("float32")
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="binary_crossentropy", **compile_args)
    model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch / (time.perf_counter() - start)


def check(label: str, run: Callable[[], str]) -> bool:
    """Run one check; print `label: ok (detail)` or `label: FAILED (error)`."""
    try:
        detail = run()
    except Exception as exc:  # any failure is the finding: report it and go on with the others
        print(f"{label}: FAILED ({type(exc).__name__}: {exc})", flush=True)
        return False
    print(f"{label}: ok ({detail})", flush=True)
    return True


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    size, batch = (args.size[0], args.size[1]), args.batch_size
    quiet_native_logs()
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:  # before TensorFlow starts: the multi-device path over logical CPUs
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(CPU_REPLICAS)]
        )
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}")
    if gpus:
        print(f"GPU: {len(gpus)} found ({', '.join(g.name for g in gpus)})")
    else:
        print("GPU: none found; every figure below is the CPU's (the GPU build: python3 run.py sync gpu)")
    small = model_builder("custom", (32, 32))

    def mixed() -> str:
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            rate = images_per_second(small, 2, (32, 32), 1)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        return f"a training step in float16, {rate:.0f} images/s"

    def xla() -> str:
        rate = images_per_second(small, 2, (32, 32), 1, jit_compile=True)
        return f"a training step compiled by XLA, {rate:.0f} images/s"

    def mirrored() -> str:
        devices = None if len(gpus) > 1 else [d.name for d in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
        with strategy.scope():
            images_per_second(small, 2 * strategy.num_replicas_in_sync, (32, 32), 1)
        where = f"{len(gpus)} GPUs" if len(gpus) > 1 else f"{CPU_REPLICAS} logical CPUs"
        return f"MirroredStrategy over {where}, {strategy.num_replicas_in_sync} replicas"

    passed = [check("mixed precision", mixed), check("XLA", xla), check("multi-device", mirrored)]
    print(f"\ntraining images/s at {size[0]}x{size[1]}, batch {batch}, random tensors:")
    print(f"{'model':>9}  {'GPU (mixed precision)':>22}  {'CPU (float32)':>14}")
    for name in ("custom", "vgg19", "resnet50"):
        build = model_builder(name, size)
        on_gpu = "no GPU"
        if gpus:
            keras.mixed_precision.set_global_policy("mixed_float16")
            on_gpu = f"{images_per_second(build, batch, size, args.steps):.1f}"
            keras.mixed_precision.set_global_policy("float32")
        with tf.device("/CPU:0"):
            on_cpu = images_per_second(build, batch, size, args.cpu_steps)
        print(f"{name:>9}  {on_gpu:>22}  {on_cpu:>14.1f}", flush=True)
    if not all(passed):
        sys.exit(1)


if __name__ == "__main__":
    from breakhis.pipeline.stage import run_stage

    run_stage(main)
