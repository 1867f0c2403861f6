"""Every path the pipeline reads or writes, in one place (the catalogue `dvc.yaml` mirrors).

Paths are relative to the project root, where DVC runs every stage. Stage modules and the library
import them from here; no other module spells out a pipeline path.
"""

from __future__ import annotations

from pathlib import Path

# the code: the library, and the packages of what is run (the DVC stages, the other commands)
LIBRARY = "breakhis"
ENTRY_POINTS = ("stages", "commands")

PARAMS_FILE = Path("params.yaml")
RUNS_DIR = Path(".runs")  # locks of the stages that replace several outputs as one unit, and (while one
# runs, or after it was killed) their earlier outputs: breakhis.pipeline.files.output_unit
ENVIRONMENT_LOCK = Path("uv.lock")  # every package's exact version and hashes (`python3 run.py lock`)

# ingest
EXTRACTED_ARCHIVES = Path("data/extracted")  # unpacked raw archives, reused while their content is the same
INGESTED = Path("data/ingested")
MANIFEST = INGESTED / "manifest.csv"
DUPLICATES = INGESTED / "duplicates.csv"  # dropped pixel twins and the image kept for each
INGEST_METRICS = Path("metrics/ingest.json")

# split
SPLIT_DIR = Path("data/split")
TRAIN_SPLIT = SPLIT_DIR / "train.csv"
VAL_SPLIT = SPLIT_DIR / "val.csv"
SPLIT_METRICS = Path("metrics/split.json")
SPLIT_PLOT = Path("plots/split.png")

# augment
AUGMENTED = Path("data/augmented")
AUGMENTED_TRAIN = AUGMENTED / "train.csv"
AUGMENT_PREVIEW = Path("plots/augment_preview.png")

# train-<model>: models/<model>/model.keras (its description inside); evaluate: models/<model>/decision.json
MODELS_DIR = Path("models")
MODEL_FILE_NAME = "model.keras"
DECISION_FILE_NAME = "decision.json"  # threshold, temperature, ensemble weight chosen on validation
RESUME_DIR = MODELS_DIR / ".resume"  # state of interrupted training runs
SNAPSHOTS_DIR = Path("snapshots")  # weights after train.snapshot_epochs, per model
TRAIN_LOGS = Path("metrics/train")  # one DVCLive folder per model

# evaluate
EVALUATE_METRICS = Path("metrics/evaluate.json")
HEADLINE_METRICS = Path(
    "metrics/headline.json"
)  # ten keys of evaluate.json, read first (breakhis.evaluation.headline)
EVALUATE_PLOTS = Path("plots/evaluate")
TEST_PREDICTIONS = EVALUATE_PLOTS / "predictions"  # per-image test predictions, <model>.csv
REPORT = Path("metrics/report.md")
REPORT_HTML = Path("metrics/report.html")  # the same report, self-contained (figures inline)
MODEL_CARD = Path("metrics/model_card.md")


def model_dir(name: str, models_dir: Path = MODELS_DIR) -> Path:
    """A model's folder (a DVC artifact): the train stage's model file and evaluate's decision;
    `ensemble` holds the ensemble's decision only."""
    return models_dir / name


def model_file(name: str, models_dir: Path = MODELS_DIR) -> Path:
    """The saved model of a train stage."""
    return model_dir(name, models_dir) / MODEL_FILE_NAME


def decision_file(name: str, models_dir: Path = MODELS_DIR) -> Path:
    """Evaluate's decision for a model or the ensemble."""
    return model_dir(name, models_dir) / DECISION_FILE_NAME


def predictions_file(model: str) -> Path:
    """Evaluate's per-image test predictions of a scored model (in git: `cache: false`)."""
    return TEST_PREDICTIONS / f"{model}.csv"


def snapshot_dir(name: str) -> Path:
    """A train stage's weights after `train.snapshot_epochs` (a DVC output, possibly empty)."""
    return SNAPSHOTS_DIR / name


def snapshot_index(name: str) -> Path:
    """The list of a train stage's snapshots, in its snapshots folder: the folder is never empty
    (DVC warns of an empty output folder)."""
    return snapshot_dir(name) / "index.json"


def snapshot_name(epoch: int) -> str:
    """The file name of a model's weights after `epoch` (1-based)."""
    return f"epoch-{epoch:04d}.weights.h5"


def epoch_predictions_file(model: str) -> Path:
    """Evaluate's test predictions of a model's snapshots, one row per image and epoch (in git)."""
    return EVALUATE_PLOTS / "epochs" / f"{model}.csv"


def train_log_dir(name: str) -> Path:
    """A train stage's DVCLive folder."""
    return TRAIN_LOGS / name


def member_log_dir(live_dir: Path, seed: int) -> Path:
    """The DVCLive folder of a seed ensemble's network after the first, inside the model's
    (breakhis.modeling.seed_training)."""
    return live_dir / f"seed-{seed}"


def member_log_dirs(name: str) -> list[Path]:
    """The DVCLive folders of a trained seed ensemble's networks after the first; none for one network."""
    return sorted(train_log_dir(name).glob("seed-*"))


def validation_curve(name: str, metric: str) -> Path:
    """A train stage's per-epoch validation metric, as DVCLive's Keras callback writes it."""
    return train_log_dir(name) / "plots" / "metrics" / "eval" / f"{metric}.tsv"


def training_curve(name: str, metric: str) -> Path:
    """A train stage's per-epoch metric on its training data, as DVCLive's Keras callback writes it."""
    return train_log_dir(name) / "plots" / "metrics" / "train" / f"{metric}.tsv"


# commands outside the DAG (git ignores their output folders)
CV_DIR = Path("cv")  # commands.cross_validate: summaries, one folder per label and seed: cv/<label>/s<seed>/
SEEDS_DIR = Path("seeds")  # commands.seed_spread: one folder per label
PROFILES_DIR = Path("profiles")  # named, versioned param sets (breakhis.pipeline.profiles)
