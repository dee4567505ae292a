"""Recommendation (PROTOCOLS §2 `recsys_cj`): the split, the metrics, baselines, the harness."""
