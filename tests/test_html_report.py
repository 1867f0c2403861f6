"""metrics/report.html: the report's text with its figures inline, opening with nothing beside it."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from breakhis.evaluation.html_report import write_report_html

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def report(tmp_path: Path, figure: str = "../plots/evaluate/roc.png") -> Path:
    (tmp_path / "plots" / "evaluate").mkdir(parents=True)
    (tmp_path / "plots" / "evaluate" / "roc.png").write_bytes(PNG)
    (tmp_path / "metrics").mkdir()
    markdown = tmp_path / "metrics" / "report.md"
    markdown.write_text(
        "# Evaluation on the test split\n\n| Model | AUC |\n|:--|--:|\n| custom | 0.912 |\n\n"
        f"![ROC]({figure})\n\n[model card](model_card.md)\n"
    )
    return markdown


def test_figures_are_inline_and_tables_and_links_kept(tmp_path: Path) -> None:
    markdown = report(tmp_path)
    write_report_html(markdown, tmp_path / "metrics" / "report.html")
    page = (tmp_path / "metrics" / "report.html").read_text()
    assert f'src="data:image/png;base64,{base64.b64encode(PNG).decode()}"' in page
    assert "../plots" not in page
    assert "<title>Evaluation on the test split</title>" in page
    assert "<td>custom</td>" in page.replace(' style="text-align: left;"', "")
    assert '<a href="model_card.md">model card</a>' in page


def test_a_missing_figure_fails_rather_than_show_a_broken_picture(tmp_path: Path) -> None:
    markdown = report(tmp_path, figure="../plots/evaluate/missing.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        write_report_html(markdown, tmp_path / "metrics" / "report.html")


def test_a_photo_grid_is_carried_as_a_jpeg(tmp_path: Path) -> None:
    """Grad-CAM grids are large PNGs; inline as JPEG they keep the page well under git's 2 MB."""
    import io

    import numpy as np
    from PIL import Image

    markdown = report(tmp_path)
    noise = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    assert len(buffer.getvalue()) > 200_000
    (tmp_path / "plots" / "evaluate" / "roc.png").write_bytes(buffer.getvalue())
    write_report_html(markdown, tmp_path / "metrics" / "report.html")
    page = (tmp_path / "metrics" / "report.html").read_text()
    assert 'src="data:image/jpeg;base64,' in page and "image/png" not in page
