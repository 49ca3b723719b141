"""Helpers of the tests and benchmarks (not part of the installed package)."""
