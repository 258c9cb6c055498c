"""Schedules and times at the edges of what a date or a float holds: PutScheduledAction
answers them as AWS would (stored, or a ValidationException), never with an internal error."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError

from autoscaling.scaling_helpers import Clients, resource_id
from sabio.autoscaling import schedules
from support.deploy import deploy, unique, wait_for_status
from support.signed_json import problem, send

NS = "sagemaker"
DIM = "sagemaker:variant:DesiredInstanceCount"
END_OF_TIME = dt.datetime(9999, 12, 31, 23, 0, tzinfo=dt.UTC)


@pytest.fixture
def target(clients: Clients) -> Iterator[dict[str, str]]:
    """A target on an endpoint that failed at once (missing model data): nothing runs."""
    name = deploy(clients.sm, "s3://models/missing/model.tar.gz", name=unique("edge"), wait=False)
    assert wait_for_status(clients.sm, name, {"Failed"})["EndpointStatus"] == "Failed"
    where = {"ServiceNamespace": NS, "ResourceId": resource_id(name), "ScalableDimension": DIM}
    clients.aas.register_scalable_target(MinCapacity=1, MaxCapacity=1, **where)
    yield where
    clients.sm.delete_endpoint(EndpointName=name)


def test_runs_past_what_a_date_or_a_float_holds_never_come() -> None:
    now = time.time()
    huge_rate = schedules.parse(f"rate({'9' * 400} days)")
    assert schedules.next_run(huge_rate, now, anchor=now) is None
    # The end of year 9999 in UTC is already year 10000 in Kiritimati (UTC+14).
    daily = schedules.parse("cron(0 9 * * ? *)", "Pacific/Kiritimati")
    assert schedules.next_run(daily, now, anchor=now, start=END_OF_TIME.timestamp()) is None


def test_a_step_needs_a_number() -> None:
    for expression in ("cron(*/ * * * ? *)", "cron(0 5/ * * ? *)"):
        with pytest.raises(schedules.ScheduleError):
            schedules.parse(expression)


def test_put_takes_far_schedules_and_refuses_empty_steps(
    clients: Clients, target: dict[str, str]
) -> None:
    aas = clients.aas
    action = {"ScalableTargetAction": {"MinCapacity": 1}, **target}
    aas.put_scheduled_action(
        ScheduledActionName="end-of-time",
        Schedule="cron(0 9 * * ? *)",
        Timezone="Pacific/Kiritimati",
        StartTime=END_OF_TIME,
        **action,
    )
    aas.put_scheduled_action(
        ScheduledActionName="never", Schedule=f"rate({'9' * 400} days)", **action
    )
    with pytest.raises(ClientError) as caught:
        aas.put_scheduled_action(
            ScheduledActionName="no-step", Schedule="cron(*/ * * * ? *)", **action
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    listed = aas.describe_scheduled_actions(ServiceNamespace=NS, ResourceId=target["ResourceId"])
    names = sorted(a["ScheduledActionName"] for a in listed["ScheduledActions"])
    assert names == ["end-of-time", "never"]
    # The autoscaler keeps running beside them: an action due soon still runs.
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2)
    aas.put_scheduled_action(
        ScheduledActionName="soon",
        Schedule=f"at({soon.strftime('%Y-%m-%dT%H:%M:%S')})",
        ScalableTargetAction={"MaxCapacity": 2},
        **target,
    )
    deadline = time.monotonic() + 15
    while True:
        [scaled] = aas.describe_scalable_targets(
            ServiceNamespace=NS, ResourceIds=[target["ResourceId"]]
        )["ScalableTargets"]
        if scaled["MaxCapacity"] == 2:
            break
        assert time.monotonic() < deadline, scaled
        time.sleep(0.2)


def test_a_start_time_no_float_holds_is_a_validation_error(
    clients: Clients, target: dict[str, str]
) -> None:
    body = json.dumps(
        {
            **target,
            "ScheduledActionName": "overflow",
            "Schedule": "rate(1 hour)",
            "StartTime": 10**400,
        }
    ).encode()
    with requests.Session() as http:
        reply = send(
            clients.server,
            http,
            "AnyScaleFrontendService.PutScheduledAction",
            body,
            service="application-autoscaling",
        )
    assert problem(reply, {"ValidationException"}) is None, reply
    assert "startTime" in reply.message or "StartTime" in reply.message, reply.message


def test_the_same_new_action_put_at_once_by_many_clients_is_stored_once(
    clients: Clients, target: dict[str, str]
) -> None:
    """Puts are upserts: racing to create one name must not turn into an internal error."""
    callers = [boto3.client("application-autoscaling") for _ in range(8)]

    def put(caller: Any, name: str) -> str:
        try:
            caller.put_scheduled_action(ScheduledActionName=name, Schedule="rate(1 hour)", **target)
        except ClientError as error:
            return str(error.response["Error"]["Code"])
        return "ok"

    outcomes: list[str] = []
    with ThreadPoolExecutor(len(callers)) as pool:
        for round_ in range(30):
            name = f"raced-{round_}"
            outcomes += pool.map(put, callers, [name] * len(callers))
    assert set(outcomes) == {"ok"}, sorted(set(outcomes))
    listed = clients.aas.describe_scheduled_actions(
        ServiceNamespace=NS, ResourceId=target["ResourceId"], MaxResults=50
    )["ScheduledActions"]
    assert sorted(a["ScheduledActionName"] for a in listed) == sorted(
        f"raced-{n}" for n in range(30)
    )
