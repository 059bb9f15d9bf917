"""The small kernel every AI Mass service stands on: settings, topics, schemas, broker, metrics, health."""
