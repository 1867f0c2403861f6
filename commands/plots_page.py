"""The HTML page template `dvc plots show` and `dvc plots diff` fill: every chart renders offline.

DVC's own page loads Vega, Vega-Lite and Vega-Embed from a CDN, so without network its interactive
charts are blank. This template carries the three libraries inline instead, as the
`vl-convert-python` package bundles them (`vl_convert.javascript_bundle`), so nothing is copied into
the repository and the versions follow uv.lock. `.dvc/config` names it (`plots.html_template`);
`run.py` writes it whenever `.venv/` is synced or it is missing (it is generated, so git ignores it):

    python -m commands.plots_page [PATH]      (default .dvc/plots-offline.html)

The page has no `{scripts}` placeholder, so DVC adds no CDN tags; each chart's own inline script
calls `vegaEmbed`, which the bundle defines on `window` before any chart runs.
"""

from __future__ import annotations

from pathlib import Path

from breakhis.pipeline.cli import command_parser

TEMPLATE = Path(".dvc") / "plots-offline.html"
# the Vega-Lite major version of DVC's plot templates (dvc_render: "$schema" .../vega-lite/v5.json)
VEGA_LITE_VERSION = "5.21"

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{refresh_tag}
<title>DVC plots</title>
<!-- Vega, Vega-Lite and Vega-Embed, inlined from vl-convert-python: no network needed -->
<script>
(function () {
BUNDLE
})();
</script>
<style>
body { font-family: sans-serif; margin: 1em; }
table { border-spacing: 15px; }
img { max-width: 100%; }
</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def vega_bundle() -> str:
    """Vega, Vega-Lite and Vega-Embed in one script that defines `vega`, `vegaLite` and
    `vegaEmbed` on `window`."""
    import vl_convert

    # the snippet is optional (none: the standard bundle), though the package's stub says str
    return str(vl_convert.javascript_bundle(vl_version=VEGA_LITE_VERSION))  # type: ignore[call-arg]


def plots_template(bundle: str) -> str:
    """The page with `bundle` inline, wrapped in a function so its top-level names stay its own (a
    chart's `var spec` cannot clash with them)."""
    return PAGE.replace("BUNDLE", bundle.replace("</script", "<\\/script"))


def write_plots_template(path: Path = TEMPLATE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(plots_template(vega_bundle()), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    parser = command_parser("commands.plots_page", __doc__.split("\n\n")[0])
    parser.add_argument(
        "path", nargs="?", type=Path, default=TEMPLATE, help=f"where to write it ({TEMPLATE})"
    )
    print(write_plots_template(parser.parse_args(argv).path))


if __name__ == "__main__":
    main()
