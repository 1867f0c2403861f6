"""The dataset, without TensorFlow: BreaKHis layout and sources, images, ingest, splits, augmentation."""
