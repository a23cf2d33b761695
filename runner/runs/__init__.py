"""Experiments: a validated config turned into engine objects (build), run folders,
sweeps, and their parallel and Dask execution."""
