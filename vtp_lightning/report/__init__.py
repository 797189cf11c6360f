"""Loss-combination comparison report for an ablation grid (``vtp-report``).

Reads every cell's ``metrics.csv`` under one grid folder, averages seeds, and answers the paper's
questions in pictures: does generation keep improving with tokenizer compute, and does better
reconstruction (or better understanding) go with better generation?
"""

from vtp_lightning.report.build import Report, build_report

__all__ = ["Report", "build_report"]
