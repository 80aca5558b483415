"""The Kafka shell around the pure core: one consumer-group member and its topics."""

from consumer.pipeline.member import FatalKafkaError, Member

__all__ = ["FatalKafkaError", "Member"]
