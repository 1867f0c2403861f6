"""The model names and the value types that the sections of the params schema share
(breakhis.pipeline.params, breakhis.pipeline.train_params)."""

from __future__ import annotations

from typing import Annotated, Final, Literal, get_args

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict
from pydantic_core import PydanticCustomError

ModelName = Literal["custom", "vgg19", "resnet50"]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)  # each has a models.<name> section and a train stage
ENSEMBLE = "ensemble"  # the soft vote of the models, scored beside them
SCORED_MODELS = (*MODEL_NAMES, ENSEMBLE)  # what evaluate, the report and the card list
COLOUR_BASELINE = "colour_baseline"  # scored beside them: what every model must beat
EVALUATED = (*SCORED_MODELS, COLOUR_BASELINE)  # every entry of evaluate's metrics and predictions


def _not_a_boolean(value: object) -> object:
    """YAML's true/false are not numbers (pydantic's lax float would read true as 1.0)."""
    if isinstance(value, bool):
        raise PydanticCustomError("number_not_boolean", "expected a number, not a boolean (true/false)")
    return value


# Floats take ints (`learning_rate: 1`) and YAML's 1e-4 (a string to PyYAML), never true/false;
# `Section` refuses inf and NaN in every float. Ints and bools are strict: `epochs: true`,
# `epochs: 3.0`, `epochs: "3"` and `flip: 1` are refused instead of converted.
Number = Annotated[float, BeforeValidator(_not_a_boolean)]
Integer = Annotated[int, Strict()]
Flag = Annotated[bool, Strict()]
Fraction = Annotated[Number, Field(gt=0.0, lt=1.0)]
PositiveInt = Annotated[Integer, Field(gt=0)]
ImageSize = tuple[Annotated[Integer, Field(ge=32)], Annotated[Integer, Field(ge=32)]]
Magnification = Literal[40, 100, 200, 400]
# what a model sees of a view's colour (breakhis.modeling.input_pipeline.stain_free)
Colour = Literal["rgb", "grey", "haematoxylin"]
Seed = Annotated[Integer, Field(ge=0, le=2**32 - 1)]  # NumPy's and Keras's seeds are 32-bit


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def pixel_count(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def size_text(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


# The decision rule's names: is the threshold fixed (a param) or chosen on the validation split, and
# by what? Answered by `chosen_by` alone (params validation, evaluate's decision, the card, the docs).
FIXED: Final = "fixed"  # the threshold is a param (`evaluate.threshold: 0.5`)
YOUDEN: Final = "youden"  # chosen on validation to maximise Youden's J (balanced accuracy)
F1: Final = "f1"  # chosen on validation to maximise F1
Criterion = Literal["youden", "f1"]
ThresholdRule = Literal["fixed", "youden", "f1"]
CRITERIA: tuple[Criterion, ...] = (YOUDEN, F1)


def chosen_by(rule: float | str) -> Criterion | None:
    """Is the threshold chosen or fixed? The criterion it is chosen by on the validation split, or
    None when it is fixed. `rule`: `evaluate.threshold` (a probability or a criterion), or a
    decision's `threshold_rule`."""
    if isinstance(rule, float | int) or rule == FIXED:
        return None
    for criterion in CRITERIA:
        if rule == criterion:
            return criterion
    raise ValueError(f"threshold rule {rule!r}: not {FIXED}, {YOUDEN} or {F1}")
