"""Where and how TensorFlow runs: GPU memory growth, mixed precision, op determinism, and the
distribution strategy (MirroredStrategy over several GPUs, or over logical CPUs for testing).

Call `configure_runtime` once per process, before any model is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from breakhis.pipeline.train_params import TrainParams


@dataclass(frozen=True)
class Runtime:
    strategy: tf.distribute.Strategy
    devices: list[str]
    precision: str  # the Keras dtype policy in force, e.g. float32 or mixed_float16
    deterministic: bool

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    def describe(self) -> dict[str, object]:
        """What DVCLive records so that experiments say where they ran."""
        return {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "devices": ", ".join(self.devices),
            "replicas": self.replicas,
            "precision": self.precision,
            "deterministic": self.deterministic,
        }


def configure_runtime(train: TrainParams, seed: int) -> Runtime:
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    if train.cpu_replicas > 1 and not gpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(train.cpu_replicas)]
        )
    keras.utils.set_random_seed(seed)
    if train.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.mixed_precision.set_global_policy("mixed_float16" if train.mixed_precision else "float32")

    if len(gpus) > 1:
        strategy: tf.distribute.Strategy = tf.distribute.MirroredStrategy()
    elif train.cpu_replicas > 1 and not gpus:
        cpus = [device.name for device in tf.config.list_logical_devices("CPU")]
        strategy = tf.distribute.MirroredStrategy(cpus)
    else:
        strategy = tf.distribute.get_strategy()  # the default: one device
    devices = [
        device.name for device in tf.config.list_logical_devices() if device.device_type in {"GPU", "CPU"}
    ]
    return Runtime(strategy, devices, keras.mixed_precision.global_policy().name, train.deterministic)
