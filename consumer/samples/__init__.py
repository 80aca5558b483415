"""Sample data shipped with the package, for the README demo and for tests.

``macos_process_events.ndjson``: 300 ECS process events, one JSON object a line, as Elastic
Defend (macOS exec events) and Auditbeat (``system/process``) write them to Kafka. Mostly
benign; the labeled cases of :func:`consumer.generator.labeled_events` are spread through
it: six kextunload attacks the seed rule must match (one with flattened dotted keys such as
``"process.name": "kextunload"``, one with a scalar ``event.type``), ``attack_full_path``
delivered a second time with the same ``event.id`` (a Kafka redelivery: one alert, not
two), and eight near misses it must not match (wrong case, trailing slash, substring, exit
event, the command line as one argument, another kext, kextstat). So seven lines match,
six distinct events.

It was written once by ``python -m consumer.generator --write-sample``
(:func:`consumer.generator.sample_events` with ``SAMPLE_SEED``); rerunning that gives the
same bytes.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["SAMPLE_EVENTS_FILE", "sample_events_path"]

SAMPLE_EVENTS_FILE = "macos_process_events.ndjson"


def sample_events_path() -> Path:
    """Filesystem path of ``macos_process_events.ndjson``.

    The package is installed as plain files (wheel or editable), so the resource is a real
    file. From a zip import it would only exist as a temporary copy inside ``as_file``; that
    case raises rather than return a path that is gone by the time it is read.
    """
    resource = files(__name__).joinpath(SAMPLE_EVENTS_FILE)
    if not isinstance(resource, Path):
        raise RuntimeError(f"{SAMPLE_EVENTS_FILE} is not a plain file: {resource!r}")
    return resource
