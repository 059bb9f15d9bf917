"""Research and evaluation scripts: how the product's choices were measured, not part of any service.

research/README.md says what each script answers and how to run it; tests under tests/ run every one of them.
"""
