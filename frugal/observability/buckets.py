"""Histogram buckets shared by the serving metrics and the routing metrics."""

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

__all__ = ["BATCH_BUCKETS", "LATENCY_BUCKETS"]
