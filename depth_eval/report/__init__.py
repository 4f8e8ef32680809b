"""What a run reports once its numbers are in: results.json / results.csv, the rankings and tables,
the CI gate and its baseline, the per-image CSV and the history of stored runs."""
