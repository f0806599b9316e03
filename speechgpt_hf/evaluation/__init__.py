"""Evaluation: metrics, the offline ASR judge and the benchmark harness."""
