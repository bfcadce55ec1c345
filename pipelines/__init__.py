"""Orchestration: configuration, Dask cluster, stages and the command line."""
