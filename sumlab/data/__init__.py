"""Data: load dialogues from a hub id or local files (JSONL, CSV, Parquet), group references, subsample; audit."""
