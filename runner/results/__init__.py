"""The results folder: tables, atomic files, status, loading, analysis, plots, report. No Numba."""
