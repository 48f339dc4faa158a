"""Reports: an HTML viewer of a run (summary, plots, every trajectory) and the covariate-shift analysis."""

from oec.report.page import build_report, write_report

__all__ = ["build_report", "write_report"]
