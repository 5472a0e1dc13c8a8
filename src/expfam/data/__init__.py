"""Datasets: loaders registered as plugins (filled in by the data module)."""
