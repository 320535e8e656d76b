"""Measurements on the reference: perplexity, sparsity calibration and comparison."""
