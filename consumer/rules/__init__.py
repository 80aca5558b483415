"""Rules: the model, the loaders for Elastic's formats, and the built-in rules."""

from importlib.resources import files
from pathlib import Path

from consumer.rules.loaders import LoadResult, load_rules, load_toml_rule
from consumer.rules.model import AlertSuppression, AttackEntry, Rule, Technique, Threat
from consumer.rules.topics import rule_topics, topic_pattern

__all__ = [
    "AlertSuppression",
    "AttackEntry",
    "LoadResult",
    "Rule",
    "Technique",
    "Threat",
    "builtin_rules_path",
    "load_rules",
    "load_toml_rule",
    "rule_topics",
    "topic_pattern",
]


def builtin_rules_path() -> Path:
    """The folder of rules that ship with the package (the seed rule)."""
    return Path(str(files("consumer.rules") / "builtin"))
