"""``kibana.alert.reason``, built the way Kibana's ``buildReasonMessageUtil`` builds it.

Template (parts whose value is missing are left out)::

    {event.category} event with process {process.name}, parent process
    {process.parent.name}, file {file.name}, source {source.address}:{source.port},
    destination {destination.address}:{destination.port}, by {user.name} on {host.name}
    created {severity} alert {rule name}.

Kibana reads the hit's ``fields`` (every value an array) and joins arrays with ``", "``;
a single ``"-"`` counts as missing. ``with`` appears only when one of the process,
parent, file, source or destination parts is present. As in Kibana, a port is written
after its address part even when the address is missing.
"""

from __future__ import annotations

from typing import Any

from consumer.alerting.fields import lookup


def _text(event: dict[str, Any], path: str) -> str | None:
    values = lookup(event, path)
    if not values or values == ["-"]:
        return None
    return ", ".join(_js_string(v) for v in values)


def _js_string(value: Any) -> str:
    # JavaScript's String(): booleans lower-case, integral floats without ".0".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def build_reason(event: dict[str, Any], severity: str, rule_name: str) -> str:
    """The reason sentence for an alert on ``event`` with the given severity and rule name."""
    category = _text(event, "event.category")
    process = _text(event, "process.name")
    parent = _text(event, "process.parent.name")
    file = _text(event, "file.name")
    source = _text(event, "source.address")
    source_port = _text(event, "source.port")
    destination = _text(event, "destination.address")
    destination_port = _text(event, "destination.port")
    user = _text(event, "user.name")
    host = _text(event, "host.name")

    of_interest = any(
        v is not None
        for v in (process, parent, file, source, source_port, destination, destination_port)
    )
    parts = [f"{category} event" if category is not None else "event"]
    if of_interest:
        parts.append(" with")
    if process is not None:
        parts.append(f" process {process},")
    if parent is not None:
        parts.append(f" parent process {parent},")
    if file is not None:
        parts.append(f" file {file},")
    if source is not None:
        parts.append(f" source {source}")
    if source_port is not None:
        parts.append(f":{source_port},")
    if destination is not None:
        parts.append(f" destination {destination}")
    if destination_port is not None:
        parts.append(f":{destination_port},")
    if user is not None:
        parts.append(f" by {user}")
    if host is not None:
        parts.append(f" on {host}")
    parts.append(f" created {severity} alert {rule_name}.")
    return "".join(parts)
