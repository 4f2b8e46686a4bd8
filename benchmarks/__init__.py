"""Side-by-side speed benchmarks (not tests); `python -m benchmarks` writes the speed table."""
