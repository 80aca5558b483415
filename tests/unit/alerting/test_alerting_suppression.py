"""Alert suppression: group fields, docs_count, start/end, updates with the same id."""

from __future__ import annotations

from datetime import timedelta

from alerting_helpers import Clock, event, make_core, run, seed_rule

from consumer.alerting import ALERT, ALERT_UPDATE, MAX_SIGNALS_WARNING_SUPPRESSION, RULE_STATUS
from consumer.alerting.identity import instance_id
from consumer.rules.model import AlertSuppression


def suppressed_rule(
    *fields: str, duration: timedelta | None = None, strategy: str = "suppress", **changes
):
    return seed_rule(
        timestamp_override=None,
        alert_suppression=AlertSuppression(tuple(fields), duration, strategy),
        **changes,
    )


def test_group_alert_fields_and_updates() -> None:
    rule = suppressed_rule("host.name", "user.name")
    clock = Clock("2022-08-10T15:00:00Z")
    core = make_core(rule, clock)
    [alert] = run(
        core, rule, [event("e1", "2022-08-10T14:02:00Z", host={"name": "h"}, user={"name": "root"})]
    )
    terms = [{"field": "host.name", "value": "h"}, {"field": "user.name", "value": "root"}]
    assert alert.kind == ALERT
    doc = alert.value
    assert doc["kibana.alert.suppression.terms"] == terms
    assert doc["kibana.alert.suppression.docs_count"] == 0
    assert doc["kibana.alert.suppression.start"] == "2022-08-10T14:02:00.000Z"
    assert doc["kibana.alert.suppression.end"] == "2022-08-10T14:02:00.000Z"
    assert doc["kibana.alert.instance.id"] == instance_id(terms, rule.uuid, "default")

    clock.set("2022-08-10T15:01:00Z")
    updates = run(
        core,
        rule,
        [
            event("e2", "2022-08-10T14:04:00Z", host={"name": "h"}, user={"name": "root"}),
            event("e3", "2022-08-10T14:01:00Z", host={"name": "h"}, user={"name": "root"}),
        ],
    )
    assert [u.kind for u in updates] == [ALERT_UPDATE, ALERT_UPDATE]
    last = updates[-1]
    assert last.key == alert.key == last.value["kibana.alert.uuid"]
    assert last.value["kibana.alert.suppression.docs_count"] == 2
    assert last.value["kibana.alert.suppression.start"] == "2022-08-10T14:01:00.000Z"
    assert last.value["kibana.alert.suppression.end"] == "2022-08-10T14:04:00.000Z"
    assert last.value["kibana.alert.last_detected"] == "2022-08-10T15:01:00.000Z"
    assert last.value["@timestamp"] == doc["@timestamp"]  # the alert keeps its creation time
    # Earlier outputs are not aliased to state: later updates did not change them.
    assert doc["kibana.alert.suppression.docs_count"] == 0
    assert core.counters[rule.uuid].suppressed == 2


def test_missing_field_suppress_makes_null_group() -> None:
    rule = suppressed_rule("host.name", "user.name")
    [alert] = run(make_core(rule), rule, [event("e1", "2022-08-10T14:02:00Z", host={"name": "h"})])
    assert alert.value["kibana.alert.suppression.terms"] == [
        {"field": "host.name", "value": "h"},
        {"field": "user.name", "value": None},
    ]


def test_missing_field_do_not_suppress_alerts_per_event() -> None:
    rule = suppressed_rule("host.name", "user.name", strategy="doNotSuppress")
    outputs = run(
        make_core(rule),
        rule,
        [
            event("e1", "2022-08-10T14:02:00Z", host={"name": "h"}),
            event("e2", "2022-08-10T14:02:00Z", host={"name": "h"}),
        ],
    )
    assert [o.kind for o in outputs] == [ALERT, ALERT]
    assert all("kibana.alert.suppression.terms" not in o.value for o in outputs)


def test_array_values_make_one_group_each_and_distinct_alert_ids() -> None:
    rule = suppressed_rule("host.ip", "user.name")
    outputs = run(
        make_core(rule),
        rule,
        [
            event(
                "e1",
                "2022-08-10T14:02:00Z",
                host={"ip": ["a", "b", "a"]},
                user={"name": ["x", "y"]},
            ),
        ],
    )
    assert [o.kind for o in outputs] == [ALERT] * 4
    assert len({o.key for o in outputs}) == 4
    assert [[t["value"] for t in o.value["kibana.alert.suppression.terms"]] for o in outputs] == [
        ["a", "x"],
        ["a", "y"],
        ["b", "x"],
        ["b", "y"],
    ]


def test_suppression_budget_warning_wording() -> None:
    rule = suppressed_rule("host.name", max_signals=1)
    outputs = run(
        make_core(rule),
        rule,
        [
            event("e1", "2022-08-10T14:02:00Z", host={"name": "a"}),
            event("e2", "2022-08-10T14:02:00Z", host={"name": "b"}),
        ],
    )
    assert [o.kind for o in outputs] == [ALERT, RULE_STATUS]
    assert outputs[1].value["message"] == MAX_SIGNALS_WARNING_SUPPRESSION


def test_duration_groups_outlive_windows_and_expire() -> None:
    rule = suppressed_rule("host.name", duration=timedelta(hours=1))
    core = make_core(rule)
    outputs = run(
        core,
        rule,
        [event(f"e{i}", f"2022-08-10T14:{i * 5:02d}:00Z", host={"name": "a"}) for i in range(12)],
    )
    assert [o.kind for o in outputs] == [ALERT] + [ALERT_UPDATE] * 11
    assert outputs[-1].value["kibana.alert.suppression.docs_count"] == 11
    [fresh] = run(core, rule, [event("e99", "2022-08-10T15:00:00Z", host={"name": "a"})])
    assert fresh.kind == ALERT and fresh.key != outputs[0].key
