"""The README's settings table is the settings object's own description."""

from __future__ import annotations

from pathlib import Path

from consumer.settings import settings_rows

README = Path(__file__).parents[2] / "README.md"


def test_every_setting_is_in_the_readme_table_as_defined() -> None:
    text = README.read_text(encoding="utf-8")
    for flag, env, default, meaning in settings_rows():
        assert f"| `{flag}` | `{env}` | {default} | {meaning} |" in text, flag
