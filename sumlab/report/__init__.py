"""The experiment report: ``report.html`` (self-contained, offline), ``report.md`` and plots.

Input is the results dict the experiment writes as ``results.json``: ``setup``, ``baseline`` (the key
of the first model), ``models`` (scores with 95% CIs, improvement in points, cost, training log),
``significance`` (paired tests), ``examples`` (per-example summaries and scores), ``highlight`` (ids
shown side by side) and ``lab_csv`` (the lab-compatible CSV's file name).

    from sumlab.report import headline, write_report
    paths = write_report(results, run_dir)   # {"html": ..., "markdown": ..., "rouge_bars": ...}
"""

from sumlab.report.build import validate_results, write_report
from sumlab.report.headline import headline

__all__ = ["headline", "validate_results", "write_report"]
