"""Benchmarks of ingestion, encoders, query latency and retrieval quality (benchmarks.run_all)."""
