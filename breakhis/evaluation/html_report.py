"""metrics/report.html: the markdown report as one self-contained page that opens anywhere.

The same text as metrics/report.md (one home for what the report says), rendered to HTML with
every figure inline as a `data:` URI (photo grids as JPEG): the file can be mailed, attached to a
CI run or opened from a runner's artefacts with no network and no folder beside it. Links to other
files (the model card) stay relative.
"""

from __future__ import annotations

import base64
import html
import io
import mimetypes
import re
from pathlib import Path

import markdown
from PIL import Image

from breakhis.pipeline.files import write_text_atomically

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 80em; margin: 1em auto; padding: 0 1em;
       line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; }
th { background: #f0f0f0; }
img { max-width: 100%; vertical-align: top; margin: 0.3em 0; }
code { background: #f4f4f4; padding: 0 0.2em; }
strong { color: #8a1c1c; }
"""

PHOTO_BYTES = 200_000
JPEG_QUALITY = 85
IMAGE = re.compile(r'(<img\b[^>]*\bsrc=")([^"]+)(")')


def inline_bytes(path: Path) -> tuple[str, bytes]:
    """A figure's media type and bytes as the page carries them: a PNG over `PHOTO_BYTES` is a grid
    of tissue photos (Grad-CAM), carried as a JPEG of a third of its size, so the page stays well
    under the 2 MB git takes."""
    data = path.read_bytes()
    if path.suffix.lower() != ".png" or len(data) <= PHOTO_BYTES:
        return mimetypes.guess_type(path.name)[0] or "application/octet-stream", data
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buffer, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return "image/jpeg", buffer.getvalue()


def inline_images(page: str, base: Path) -> str:
    """Every `<img src>` naming a file relative to `base` becomes a data URI of that file; a
    missing file fails here, never as a broken picture in a browser."""

    def data_uri(match: re.Match[str]) -> str:
        source = html.unescape(match.group(2))
        if source.startswith(("data:", "http:", "https:")):
            return match.group(0)
        path = base / source
        if not path.is_file():
            raise FileNotFoundError(f"{path}: a figure the report shows is missing")
        kind, data = inline_bytes(path)
        encoded = base64.b64encode(data).decode("ascii")
        return f"{match.group(1)}data:{kind};base64,{encoded}{match.group(3)}"

    return IMAGE.sub(data_uri, page)


def report_html(text: str, base: Path, title: str) -> str:
    """The page of a markdown report whose relative links and images start at `base`."""
    body = markdown.markdown(text, extensions=["tables", "sane_lists"], output_format="html")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"{inline_images(body, base)}\n</body>\n</html>\n"
    )


def write_report_html(markdown_path: Path, html_path: Path) -> None:
    """metrics/report.html from metrics/report.md (its figures inline)."""
    text = markdown_path.read_text(encoding="utf-8")
    title = next((line[2:] for line in text.splitlines() if line.startswith("# ")), markdown_path.stem)
    page = report_html(text, markdown_path.parent, title)
    write_text_atomically(html_path, page)
