"""Benchmarks (``make bench``): measured numbers go to docs/benchmarks.md, never into test assertions.

Each ``bench_*.py`` module here defines ``async def run(settings: Settings) -> str`` returning a Markdown section
(a ``###`` heading, a table, a sentence on what was measured). ``python -m tests.bench [NAME...]`` runs them against
the real Kafka and Redis and rewrites docs/benchmarks.md with the machine, the command and the date.
"""
