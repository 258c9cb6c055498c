"""Scheduled scaling: PutScheduledAction, DescribeScheduledActions and DeleteScheduledAction
through boto3, an action that comes due on a live endpoint and scales it, actions kept across
a restart, and when at, rate and cron schedules run (on a clock of the test's own)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from botocore.exceptions import ClientError

from autoscaling.scaling_helpers import FAST, Clients, deploy_echo, resource_id
from sabio.autoscaling import schedules
from support.deploy import deploy, unique, wait_for_status
from support.server import SabioServer

NS = "sagemaker"
DIM = "sagemaker:variant:DesiredInstanceCount"


def error_of(call: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def at_in(seconds: float, zone: str = "UTC") -> str:
    """An at() expression `seconds` from now (rounded up to a whole second), in `zone`."""
    moment = dt.datetime.now(ZoneInfo(zone)) + dt.timedelta(seconds=seconds + 1)
    return f"at({moment.replace(microsecond=0).strftime('%Y-%m-%dT%H:%M:%S')})"


def failed_endpoint(clients: Clients) -> str:
    """An endpoint to hang targets on without running a worker: missing model data fails it
    at once, and a failed endpoint keeps its targets."""
    name = deploy(clients.sm, "s3://models/missing/model.tar.gz", name=unique("sched"), wait=False)
    assert wait_for_status(clients.sm, name, {"Failed"})["EndpointStatus"] == "Failed"
    return name


@pytest.fixture
def target(clients: Clients) -> Iterator[dict[str, str]]:
    """A registered target (1 to 1) on a failed endpoint, as the `where` of every call."""
    where = {
        "ServiceNamespace": NS,
        "ResourceId": resource_id(failed_endpoint(clients)),
        "ScalableDimension": DIM,
    }
    clients.aas.register_scalable_target(MinCapacity=1, MaxCapacity=1, **where)
    yield where
    endpoint = where["ResourceId"].split("/")[1]
    clients.sm.delete_endpoint(EndpointName=endpoint)


def test_an_at_action_raises_the_minimum_and_the_variant_scales_out(
    clients: Clients, echo_model_uri: str
) -> None:
    endpoint = deploy_echo(clients, echo_model_uri)
    rid = resource_id(endpoint)
    where = {"ServiceNamespace": NS, "ResourceId": rid, "ScalableDimension": DIM}
    clients.aas.register_scalable_target(MinCapacity=1, MaxCapacity=3, **where)
    # Read in New York time, as the Timezone says.
    clients.aas.put_scheduled_action(
        ScheduledActionName="morning-peak",
        Schedule=at_in(2, "America/New_York"),
        Timezone="America/New_York",
        ScalableTargetAction={"MinCapacity": 2},
        **where,
    )
    deadline = time.monotonic() + 40
    while True:
        [variant] = clients.sm.describe_endpoint(EndpointName=endpoint)["ProductionVariants"]
        done = [
            a
            for a in clients.aas.describe_scaling_activities(ServiceNamespace=NS, ResourceId=rid)[
                "ScalingActivities"
            ]
            if a["StatusCode"] == "Successful"
        ]
        if variant["CurrentInstanceCount"] == 2 and done:
            break
        assert time.monotonic() < deadline, (variant, done)
        time.sleep(0.2)
    [activity] = done
    assert activity["Cause"] == "minimum capacity was set to 2 by scheduled action morning-peak"
    assert activity["Description"] == "Setting desired instance count to 2."
    [scaled] = clients.aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[rid])[
        "ScalableTargets"
    ]
    assert (scaled["MinCapacity"], scaled["MaxCapacity"]) == (2, 3)
    # An at() action runs once: the range is not set again after a manual change.
    clients.aas.register_scalable_target(MinCapacity=1, **where)
    time.sleep(1)
    [scaled] = clients.aas.describe_scalable_targets(ServiceNamespace=NS, ResourceIds=[rid])[
        "ScalableTargets"
    ]
    assert scaled["MinCapacity"] == 1
    clients.sm.delete_endpoint(EndpointName=endpoint)


def test_put_describe_filter_update_and_delete(clients: Clients, target: dict[str, str]) -> None:
    aas = clients.aas
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
    aas.put_scheduled_action(
        ScheduledActionName="weekdays",
        Schedule="cron(0 9 ? * MON-FRI *)",
        Timezone="Europe/Paris",
        StartTime=start,
        EndTime=end,
        ScalableTargetAction={"MinCapacity": 1, "MaxCapacity": 4},
        **target,
    )
    aas.put_scheduled_action(
        ScheduledActionName="hourly",
        Schedule="rate(1 hour)",
        ScalableTargetAction={"MaxCapacity": 2},
        **target,
    )
    everything = aas.describe_scheduled_actions(ServiceNamespace=NS)["ScheduledActions"]
    mine = [a for a in everything if a["ResourceId"] == target["ResourceId"]]
    assert [a["ScheduledActionName"] for a in mine] == ["weekdays", "hourly"]
    weekdays = mine[0]
    assert weekdays["ScheduledActionARN"].startswith(
        "arn:aws:autoscaling:us-east-1:123456789012:scheduledAction:"
    )
    assert weekdays["ScheduledActionARN"].endswith(
        f":resource/sagemaker/{target['ResourceId']}:scheduledActionName/weekdays"
    )
    assert weekdays["Schedule"] == "cron(0 9 ? * MON-FRI *)"
    assert weekdays["Timezone"] == "Europe/Paris"
    assert (weekdays["StartTime"], weekdays["EndTime"]) == (start, end)
    assert weekdays["ScalableTargetAction"] == {"MinCapacity": 1, "MaxCapacity": 4}
    assert weekdays["ScalableDimension"] == DIM and "CreationTime" in weekdays

    by_name = aas.describe_scheduled_actions(
        ServiceNamespace=NS, ResourceId=target["ResourceId"], ScheduledActionNames=["hourly"]
    )["ScheduledActions"]
    assert [a["ScheduledActionName"] for a in by_name] == ["hourly"]
    assert "Timezone" not in by_name[0] and "StartTime" not in by_name[0]
    page = aas.describe_scheduled_actions(
        ServiceNamespace=NS, ResourceId=target["ResourceId"], ScalableDimension=DIM, MaxResults=1
    )
    assert [a["ScheduledActionName"] for a in page["ScheduledActions"]] == ["weekdays"]
    rest = aas.describe_scheduled_actions(
        ServiceNamespace=NS, ResourceId=target["ResourceId"], NextToken=page["NextToken"]
    )
    assert [a["ScheduledActionName"] for a in rest["ScheduledActions"]] == ["hourly"]
    other = aas.describe_scheduled_actions(
        ServiceNamespace=NS, ResourceId=resource_id("somewhere-else")
    )
    assert other["ScheduledActions"] == []

    # Putting again changes what is named, keeps the rest, and clears Start/EndTime.
    aas.put_scheduled_action(
        ScheduledActionName="weekdays", ScalableTargetAction={"MaxCapacity": 6}, **target
    )
    [changed] = aas.describe_scheduled_actions(
        ServiceNamespace=NS, ResourceId=target["ResourceId"], ScheduledActionNames=["weekdays"]
    )["ScheduledActions"]
    assert changed["ScheduledActionARN"] == weekdays["ScheduledActionARN"]
    assert changed["CreationTime"] == weekdays["CreationTime"]
    assert changed["Schedule"] == weekdays["Schedule"]
    assert changed["ScalableTargetAction"] == {"MaxCapacity": 6}
    assert "StartTime" not in changed and "EndTime" not in changed

    aas.delete_scheduled_action(ScheduledActionName="weekdays", **target)
    left = aas.describe_scheduled_actions(ServiceNamespace=NS, ResourceId=target["ResourceId"])
    assert [a["ScheduledActionName"] for a in left["ScheduledActions"]] == ["hourly"]
    code, message = error_of(aas.delete_scheduled_action, ScheduledActionName="weekdays", **target)
    assert code == "ObjectNotFoundException"
    assert message == (
        f"No scheduled action found for service namespace: sagemaker, resource ID: "
        f"{target['ResourceId']}, scalable dimension: {DIM}, scheduled action name: weekdays"
    )

    # Deregistering the target deletes its scheduled actions.
    aas.deregister_scalable_target(**target)
    left = aas.describe_scheduled_actions(ServiceNamespace=NS, ResourceId=target["ResourceId"])
    assert left["ScheduledActions"] == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"Schedule": "every monday"}, "not an at("),
        ({"Schedule": "rate(5 weeks)"}, "not a valid rate expression"),
        ({"Schedule": "cron(0 9 * * MON *)"}, "must be '?'"),
        ({"Schedule": "cron(0 25 * * ? *)"}, "hours field"),
        ({"Schedule": "at(2030-02-30T10:00:00)"}, "not a valid at expression"),
        ({"Timezone": "Nowhere/Special"}, "not a valid IANA time zone"),
        ({"ScalableTargetAction": {"MinCapacity": 4, "MaxCapacity": 2}}, "greater than maximum"),
        ({"StartTime": dt.datetime(2031, 1, 1), "EndTime": dt.datetime(2030, 1, 1)}, "after"),
        ({"Schedule": None}, "Schedule is required"),
    ],
)
def test_put_refuses_what_aws_refuses(
    clients: Clients, target: dict[str, str], change: dict[str, Any], expected: str
) -> None:
    request: dict[str, Any] = {
        "ScheduledActionName": "refused",
        "Schedule": "rate(1 hour)",
        "ScalableTargetAction": {"MinCapacity": 1},
        **target,
        **change,
    }
    code, message = error_of(
        clients.aas.put_scheduled_action, **{k: v for k, v in request.items() if v is not None}
    )
    assert code == "ValidationException" and expected in message, message
    listed = clients.aas.describe_scheduled_actions(
        ServiceNamespace=NS, ResourceId=target["ResourceId"]
    )
    assert listed["ScheduledActions"] == []


def test_an_action_needs_a_registered_target(clients: Clients) -> None:
    rid = resource_id("never-registered")
    code, message = error_of(
        clients.aas.put_scheduled_action,
        ServiceNamespace=NS,
        ResourceId=rid,
        ScalableDimension=DIM,
        ScheduledActionName="orphan",
        Schedule="rate(1 hour)",
    )
    assert code == "ObjectNotFoundException"
    assert message == (
        f"No scalable target registered for service namespace: sagemaker, resource ID: {rid}, "
        f"scalable dimension: {DIM}"
    )
    code, _ = error_of(
        clients.aas.put_scheduled_action,
        ServiceNamespace=NS,
        ResourceId="endpoint/only-half",
        ScalableDimension=DIM,
        ScheduledActionName="orphan",
        Schedule="rate(1 hour)",
    )
    assert code == "ValidationException"


def test_suspended_scheduled_scaling_skips_a_due_action(
    clients: Clients, target: dict[str, str]
) -> None:
    clients.aas.register_scalable_target(
        SuspendedState={"ScheduledScalingSuspended": True}, **target
    )
    clients.aas.put_scheduled_action(
        ScheduledActionName="skipped",
        Schedule=at_in(0),
        ScalableTargetAction={"MaxCapacity": 3},
        **target,
    )
    time.sleep(2.5)  # the action came due at most 1 s in; the autoscaler runs every 0.2 s
    [kept] = clients.aas.describe_scalable_targets(
        ServiceNamespace=NS, ResourceIds=[target["ResourceId"]]
    )["ScalableTargets"]
    assert kept["MaxCapacity"] == 1


def test_actions_survive_a_restart_and_one_due_meanwhile_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    first = SabioServer(home, env=dict(FAST))
    first.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", first.url)
        clients = Clients(first)
        where = {
            "ServiceNamespace": NS,
            "ResourceId": resource_id(failed_endpoint(clients)),
            "ScalableDimension": DIM,
        }
        clients.aas.register_scalable_target(MinCapacity=1, MaxCapacity=1, **where)
        clients.aas.put_scheduled_action(
            ScheduledActionName="later",
            Schedule=at_in(4),
            ScalableTargetAction={"MaxCapacity": 3},
            **where,
        )
        [before] = clients.aas.describe_scheduled_actions(ServiceNamespace=NS)["ScheduledActions"]
    finally:
        first.stop()

    second = SabioServer(home, env=dict(FAST))
    second.start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", second.url)
        clients = Clients(second)
        [after] = clients.aas.describe_scheduled_actions(ServiceNamespace=NS)["ScheduledActions"]
        assert after == before
        deadline = time.monotonic() + 15
        while True:
            [scaled] = clients.aas.describe_scalable_targets(ServiceNamespace=NS)["ScalableTargets"]
            if scaled["MaxCapacity"] == 3:
                break
            assert time.monotonic() < deadline, scaled
            time.sleep(0.2)
    finally:
        second.stop()


# When schedules run, on the test's own clock.

T0 = dt.datetime(2026, 3, 6, 10, 0, 30, tzinfo=dt.UTC).timestamp()  # a Friday


def runs(schedule: schedules.Schedule, count: int, **bounds: float) -> list[float | None]:
    """The next `count` runs from T0, each asked for just after the previous one."""
    found: list[float | None] = []
    now = T0
    for _ in range(count):
        following = schedules.next_run(schedule, now, anchor=T0, **bounds)
        found.append(None if following is None else following - T0)
        if following is None:
            break
        now = following
    return found


def test_a_rate_runs_every_interval_within_start_and_end() -> None:
    every_minute = schedules.parse("rate(1 minute)")
    assert runs(every_minute, 4) == [60, 120, 180, 240]
    # StartTime is the first run; nothing runs after EndTime.
    bounded = runs(every_minute, 6, start=T0 + 30, end=T0 + 150)
    assert bounded == [30, 90, 150, None]
    # Asked late (the server was down), the next run is the next one on the grid, once.
    assert schedules.next_run(every_minute, T0 + 605, anchor=T0) == T0 + 660


def test_at_runs_once_and_cron_follows_its_time_zone() -> None:
    once = schedules.parse("at(2026-03-06T10:05:00)")
    assert runs(once, 3) == [270, None]
    assert schedules.next_run(schedules.parse("at(2026-03-06T10:00:00)"), T0, anchor=T0) is None
    # 9:00 on weekdays in New York: Monday 9 March is after the switch to summer time.
    weekdays = schedules.parse("cron(0 9 ? * MON-FRI *)", "America/New_York")
    moments = [
        dt.datetime.fromtimestamp(T0 + r, dt.UTC).isoformat() for r in runs(weekdays, 3) if r
    ]
    assert moments == [
        "2026-03-06T14:00:00+00:00",
        "2026-03-09T13:00:00+00:00",
        "2026-03-10T13:00:00+00:00",
    ]
    # The last Friday of each month, and the first Monday, in 2026 only.
    last_friday = schedules.parse("cron(30 18 ? * 6L 2026)")
    first = dt.datetime.fromtimestamp(T0 + (runs(last_friday, 1)[0] or 0), dt.UTC)
    assert first.isoformat() == "2026-03-27T18:30:00+00:00"
    december = schedules.parse("cron(0 0 ? 12 2#1 2026)")
    assert runs(december, 2)[1] is None
