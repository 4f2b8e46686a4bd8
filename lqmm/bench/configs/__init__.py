"""Configs of the benchmark harness (`python -m lqmm.bench --config=<file>:<variant>`)."""
