"""Streaming detection engine: Elastic Security KQL query rules over Kafka events."""

__version__ = "0.1.0"
