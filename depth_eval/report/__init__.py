"""What a run reports once its numbers are in: results.json / results.csv, the rankings and tables,
the CI gate and its baseline, the verdict (the gate with paired intervals), the per-image CSV,
report.html, JUnit XML and the history of stored runs.  Every output of a run is a reporter
(:mod:`depth_eval.report.reporters`)."""
