"""lmms-eval's results as MLflow metrics.

lmms-eval keys a task's metrics "<metric>,<filter>" ("exact_match,none", "acc,flexible-extract")
next to "<metric>_stderr,<filter>" and an "alias". MLflow rejects commas, so a metric is named
`<task>/<metric>` when its filter is "none" (lmms-eval's unfiltered default) and
`<task>/<metric>/<filter>` otherwise; any other character MLflow rejects becomes "_". Values
that are not finite numbers ("N/A" stderrs, aliases) are left out. The run logs them as
`lmms_eval/<task>/<metric>` and keeps `<task>/<metric>` in its summary's eval section.
"""

from __future__ import annotations

import math
import re
from typing import Any

UNFILTERED = "none"
_REJECTED = re.compile(r"[^\w.\- /]")  # what MLflow accepts in a metric name (colons aside)


def metric_name(task: str, key: str) -> str:
    """"gqa", "exact_match,none" -> "gqa/exact_match"; a filter other than none becomes a level."""
    metric, _, flt = key.partition(",")
    parts = [task, metric] + ([flt] if flt and flt != UNFILTERED else [])
    return "/".join(_REJECTED.sub("_", part).strip("/ .") or "_" for part in parts)


def flat_metrics(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """{"<task>/<metric>": value} for every numeric metric of simple_evaluate's results["results"]."""
    out = {}
    for task, metrics in results.items():
        for key, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out[metric_name(task, key)] = float(value)
    return out
