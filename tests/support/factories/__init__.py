"""Test data shared by unit, integration, end-to-end and benchmark tests: real records, cards, predictions."""
