"""Phase 1 of transfer learning (the head on a frozen backbone): computing backbone features once
and reusing them every epoch, as `breakhis.modeling.training` does, against running the frozen backbone on
every image in every epoch. Prints the speed-up; both measured in this run.

    python benchmarks/feature_reuse.py [--images 256] [--epochs 5] [--model resnet50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._data import synthetic_images  # noqa: E402
from breakhis.modeling.architectures import build_transfer_model  # noqa: E402
from breakhis.modeling.input_pipeline import inference_dataset, training_dataset  # noqa: E402

IMAGE_SIZE = (64, 64)
BATCH = 32


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--model", default="resnet50", choices=["vgg19", "resnet50"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths, labels = synthetic_images(Path(tmp), args.images)
        data = {"model_name": args.model, "image_size": IMAGE_SIZE, "batch_size": BATCH}
        parts = build_transfer_model(args.model, IMAGE_SIZE, "none", 0.3)
        parts.backbone.trainable = False

        parts.model.compile(optimizer="adam", loss="binary_crossentropy")
        images = training_dataset(paths, labels, seed=0, **data)
        parts.model.fit(images.take(1), verbose=0)  # warm-up: tracing
        start = time.perf_counter()
        parts.model.fit(images, epochs=args.epochs, verbose=0)
        recompute = time.perf_counter() - start

        parts.head.compile(optimizer="adam", loss="binary_crossentropy")
        parts.head.fit(
            parts.backbone.predict(inference_dataset(paths[:BATCH], **data), verbose=0),
            labels[:BATCH],
            verbose=0,
        )  # warm-up: tracing
        start = time.perf_counter()
        features = parts.backbone.predict(inference_dataset(paths, **data), verbose=0)
        parts.head.fit(features, labels, batch_size=BATCH, epochs=args.epochs, verbose=0)
        reuse = time.perf_counter() - start

    print(
        f"{args.model} phase 1, {len(paths)} images, {args.epochs} epochs: "
        f"recomputing features {recompute:.1f} s, computing once and reusing {reuse:.1f} s, "
        f"speed-up {recompute / reuse:.1f}x"
    )


if __name__ == "__main__":
    main()
