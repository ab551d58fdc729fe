"""Experiment: ``sumlab run`` (the staged, cached comparison) and ``sumlab compare``."""
