"""Scores a person can trust: calibrated relevance, hubness reduction, margin-scored duplicates."""
