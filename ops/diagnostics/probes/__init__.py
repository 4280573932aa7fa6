"""I/O per dependency: each probe measures, then hands the figures to its rules module."""
