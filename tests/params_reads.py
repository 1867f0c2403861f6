"""Run a stage as DVC runs it and record the params its code reads: the measure of test_dvc_params.

`python -m tests.params_reads <reads.json> <module> [args...]` runs `python -m <module> [args...]`
(in the working directory, as `dvc repro` does) and writes the sorted dotted keys that were read
to `reads.json`, also when the stage fails.

How a read is recorded: `load_params` is wrapped so that the params it returns (already validated)
are indexed, every section by its dotted path; while the stage runs, `Section.__getattribute__`
records each access to a field of an indexed section whose value is not itself a section
(`params.train.epochs` records `train.epochs`; reaching `params.train` reads nothing yet). An access
to a section's `__dict__` (what `model_dump`, pickling, copying and `==` go through) records every
such field of that section, so `params.model_dump()` reads every key, and
`models.model_dump(exclude={"vgg19"})` reads every key but `models.vgg19.*`.

Not recorded: the reads of validation inside `load_params` (the schema's relations and the machine
checks), which can refuse params but never change an output; reads of a section object that did
not come from `load_params` (a model's stored params, read back by evaluate, are data, not params).
"""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from breakhis.pipeline import params_file
from breakhis.pipeline.param_types import Section
from breakhis.pipeline.params import Params


class ReadRecorder:
    def __init__(self) -> None:
        self.reads: set[str] = set()
        self.paths: dict[int, str] = {}  # id of an indexed section -> its dotted prefix
        self.kept: list[Params] = []  # the indexed params stay alive, so ids are not reused

    def index(self, section: Section, prefix: str = "") -> None:
        self.paths[id(section)] = prefix
        for key in type(section).model_fields:
            value = object.__getattribute__(section, key)
            if isinstance(value, Section):
                self.index(value, f"{prefix}{key}.")

    def leaves(self, section: Section) -> list[str]:
        return [
            key
            for key in type(section).model_fields
            if not isinstance(object.__getattribute__(section, key), Section)
        ]

    def wrap_load(self, load: Callable[..., Params]) -> Callable[..., Params]:
        def load_params(*args: Any, **kwargs: Any) -> Params:
            params = load(*args, **kwargs)
            self.kept.append(params)
            self.index(params)
            return params

        return load_params

    def getattribute(self, original: Callable[[object, str], Any]) -> Callable[[object, str], Any]:
        def recorded(section: object, name: str) -> Any:
            prefix = self.paths.get(id(section))
            if prefix is not None and isinstance(section, Section):
                if name == "__dict__":
                    self.reads.update(prefix + key for key in self.leaves(section))
                elif name in type(section).model_fields and name in self.leaves(section):
                    self.reads.add(prefix + name)
            return original(section, name)

        return recorded


def main() -> None:
    out, module, *args = sys.argv[1:]
    recorder = ReadRecorder()
    params_file.load_params = recorder.wrap_load(params_file.load_params)  # before the stage imports it
    Section.__getattribute__ = recorder.getattribute(object.__getattribute__)  # type: ignore[method-assign,assignment]
    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        Path(out).write_text(json.dumps(sorted(recorder.reads), indent=1))


if __name__ == "__main__":
    main()
