"""Training corpora: which dialogues (selection), their data (data), the formats trainers use (formats), and the
frozen, streamed export (export)."""
