"""Is training input-bound? Training throughput with images read from disk through the project's
tf.data pipeline (`breakhis.modeling.input_pipeline.training_dataset`), as a ratio of the same model
trained on the same images already decoded in memory. Both measured in this run, alternating,
medians taken, after a warm-up epoch. Measured with the default `train.cache: auto` (these images
fit, so epochs after the first read decoded images from memory) and with streaming (`cache: false`,
every epoch decodes every PNG). Target: ratio >= 0.9.

    python benchmarks/input_pipeline.py [--images 384] [--epochs 2] [--model custom resnet50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks._data import synthetic_images  # noqa: E402
from breakhis.modeling.architectures import build_custom_cnn, build_transfer_model  # noqa: E402
from breakhis.modeling.input_pipeline import inference_dataset, training_dataset  # noqa: E402

IMAGE_SIZE = (64, 64)
BATCH = 32


def build(name: str) -> keras.Model:
    keras.utils.set_random_seed(0)
    if name == "custom":
        model = build_custom_cnn(IMAGE_SIZE, [16, 32, 64, 128], 0.3, True)
    else:
        model = build_transfer_model(name, IMAGE_SIZE, "none", 0.3).model
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def images_per_second(model: keras.Model, data: tuple, count: int, epochs: int) -> float:
    model.fit(*data, epochs=1, verbose=0)  # warm-up: tracing, first decode
    start = time.perf_counter()
    model.fit(*data, epochs=epochs, verbose=0)
    return count * epochs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=384)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", nargs="+", default=["custom", "resnet50"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths, labels = synthetic_images(Path(tmp), args.images)
        count = len(paths)
        for name in args.model:
            unbatched = inference_dataset(paths, model_name=name, image_size=IMAGE_SIZE, batch_size=BATCH)
            tensors = (tf.constant(np.concatenate(list(unbatched.as_numpy_iterator()))), tf.constant(labels))
            # the same images, decoded and preprocessed, as tensors in memory: no I/O, no decoding
            in_memory = (
                tf.data.Dataset.from_tensor_slices(tensors).shuffle(count, seed=0).batch(BATCH).prefetch(2)
            )
            for cache in ("auto", False):  # the default (cached: these images fit), and streaming
                from_disk = training_dataset(
                    paths,
                    labels,
                    model_name=name,
                    image_size=IMAGE_SIZE,
                    batch_size=BATCH,
                    seed=0,
                    cache=cache,
                )
                disk, memory = [], []
                for _ in range(args.repeats):
                    memory.append(images_per_second(build(name), (in_memory,), count, args.epochs))
                    disk.append(images_per_second(build(name), (from_disk,), count, args.epochs))
                disk_rate, memory_rate = statistics.median(disk), statistics.median(memory)
                print(
                    f"{name:>9} cache={cache!s:<5}: {count} images {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]}, "
                    f"batch {BATCH}: from disk {disk_rate:.1f} img/s, in memory {memory_rate:.1f} img/s, "
                    f"ratio {disk_rate / memory_rate:.2f} (target >= 0.9)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
