"""Evaluation: embedding cache, pair scoring, verification and identification metrics, reports."""
