"""Running the units of work, (snapshot, images): the run over all snapshots, the local executor,
the Dask executor and its worker, and which units the results store lets a run reuse."""
