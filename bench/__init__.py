"""Benchmarks behind ``make bench``; each module adds one section to docs/benchmarks.md."""
