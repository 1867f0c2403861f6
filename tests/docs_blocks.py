"""The command blocks of the tutorials and how-to guides, as tests/test_docs_commands.py checks them
and tests/test_pipeline.py runs them.

A command block is a fenced block tagged `bash`, `sh`, `shell` or `console`. Each is either run by
the test suite (tests/test_pipeline.py runs it in the tiny pipeline's repository) or marked, on
the line right before its fence, with why it cannot run there:

    <!-- not run: needs the full BreakHis archive (4 GB) -->
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import PROJECT_ROOT

DOCS = PROJECT_ROOT / "docs"
PAGES = sorted([*(DOCS / "tutorials").glob("*.md"), *(DOCS / "how-to").glob("*.md")])
COMMAND_LANGUAGES = ("bash", "sh", "shell", "console")
FENCE = re.compile(r"^```(\S*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
NOT_RUN = re.compile(r"<!-- not run:(.*?)-->\s*$", re.DOTALL)

# How a docs command runs in the tests' repository: in the project's environment, first on PATH
# (run.py would first install the locked environment into the repository's own .venv/)
SUBSTITUTIONS = {
    "python3 run.py dvc ": "dvc ",
    "python3 run.py repro": "dvc repro",
    ".venv/bin/": "",
}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    not_run: str | None  # the marker's reason, or None: the block runs in the test suite

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(DOCS).as_posix()}:{self.line}"

    @property
    def is_commands(self) -> bool:
        return self.language in COMMAND_LANGUAGES

    def commands(self, text: str | None = None) -> list[list[str]]:
        """Every command of the block (or of `text`) as shell words: continued lines joined,
        comments dropped, `a && b` as two commands, and a trailing `...` (more of the same) dropped."""
        text = re.sub(r"\\\n", " ", self.text if text is None else text)
        found = []
        for line in text.splitlines():
            words = shlex.split(line, comments=True)
            while words:
                cut = words.index("&&") if "&&" in words else len(words)
                command, words = words[:cut], words[cut + 1 :]
                if command[-1:] == ["..."]:
                    command = command[:-1]
                found.append(command)
        return found

    def runnable_text(self) -> str:
        text = self.text
        for docs, test in SUBSTITUTIONS.items():
            text = text.replace(docs, test)
        return text


def page_blocks(page: Path) -> list[Block]:
    text = page.read_text()
    blocks = []
    for match in FENCE.finditer(text):
        before = text[: match.start()].rstrip()
        marker = NOT_RUN.search(before.splitlines()[-1]) if before else None
        reason = marker.group(1).strip() if marker else None
        line = text.count("\n", 0, match.start()) + 1
        blocks.append(Block(page, line, match.group(1), match.group(2), reason))
    return blocks


def all_blocks() -> list[Block]:
    return [block for page in PAGES for block in page_blocks(page)]


def command_blocks() -> list[Block]:
    return [block for block in all_blocks() if block.is_commands]
