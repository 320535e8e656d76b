"""Exports of a model into other runtimes' formats (optional extras)."""
