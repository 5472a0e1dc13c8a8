"""`expfam compare`: a comparison table of finished runs, each run's NMI relative to the first, and the
configuration keys that differ between them (`differs` in the JSON document: `{"section.key": [values]}`)."""

from pathlib import Path
from typing import Annotated

import typer

from cli.output import JsonFlag, emit_json
from expfam.experiment.runs.compare import comparison_text, config_differences, read_run_summaries


def compare(
    runs: Annotated[
        list[Path],
        typer.Argument(metavar="RUN_DIR", help="Run directories; the first is the reference of the NMI ratios."),
    ],
    json_output: JsonFlag = False,
) -> None:
    """Print NMI, R², Purity and Recon of each run side by side (Markdown), then the configuration keys that differ."""
    summaries = read_run_summaries(runs)
    if not json_output:
        typer.echo(comparison_text(summaries))
        return
    reference = summaries[0].metrics.get("nmi") if summaries else None
    emit_json(
        {
            "runs": [
                {
                    "label": summary.label,
                    "run_dir": path,
                    "block": summary.config.model.block,
                    "metrics": summary.metrics,
                    "nmi_ratio": _ratio(summary.metrics.get("nmi"), reference),
                }
                for path, summary in zip(runs, summaries, strict=True)
            ],
            "differs": config_differences([summary.config for summary in summaries]),
        }
    )


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or not reference > 0:
        return None
    return value / reference
