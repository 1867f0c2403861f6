"""The pull-request workflow cannot run here: check that it parses and calls the project's own
commands in the right order (those commands are tested end to end elsewhere)."""

from __future__ import annotations

import yaml

from tests.conftest import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github/workflows/pr-report.yml"


def test_the_pr_workflow_reproduces_compares_and_comments() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert "pull_request" in workflow[True]  # PyYAML reads the key `on` as True
    assert workflow["permissions"]["pull-requests"] == "write"
    steps = workflow["jobs"]["report"]["steps"]
    uses = [step.get("uses", "") for step in steps]
    assert any(u.startswith("actions/checkout") for u in uses)
    assert (
        next(s for s in steps if s.get("uses", "").startswith("actions/checkout"))["with"]["fetch-depth"] == 0
    )
    assert any(u.startswith("iterative/setup-cml") for u in uses)
    commands = [step.get("run", "") for step in steps]
    order = [
        next(i for i, c in enumerate(commands) if "dvc pull" in c),
        next(i for i, c in enumerate(commands) if "run.py repro" in c),
        next(i for i, c in enumerate(commands) if "commands.pr_comment" in c),
        next(i for i, c in enumerate(commands) if "cml comment update" in c),
    ]
    assert order == sorted(order)
    assert "--base" in commands[order[2]] and "pr_comment.md" in commands[order[3]]
