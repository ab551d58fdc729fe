"""The experiment report: ``report.html`` (self-contained, offline), ``report.md`` and plots.

Input is the typed results that the experiment writes as ``results.json`` (:class:`sumlab.evaluation.schema.Results`):
``setup``, ``baseline`` (the key of the first model), ``models`` (scores with 95% CIs, improvement in points,
cost, training log), ``significance`` (paired tests), ``examples`` (per-example summaries and scores),
``highlight`` (ids shown side by side) and ``lab_csv`` (the lab-compatible CSV's file name).

    from sumlab.evaluation.schema import read_results
    from sumlab.report import headline, write_report
    results = read_results(run_dir / "results.json")
    paths = write_report(results, run_dir)   # {"html": ..., "markdown": ..., "rouge_bars": ...}
"""

from sumlab.report.build import write_report
from sumlab.report.headline import headline

__all__ = ["headline", "write_report"]
