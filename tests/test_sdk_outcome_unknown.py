"""The gateway's ``502 outcome-unknown`` (its connection to a node lost after sending, e.g. a node
pod draining on scale-in) is retried by the SDK for an idempotent call, as a lost connection of its
own is, and never for any other call. The gateway is faked here (fault injection): the real path is
the platform-team suite's scale-in through a real gateway."""

from __future__ import annotations

import httpx
import pytest
from memoturn.client import Memoturn, ProblemError

LOST = {"type": "outcome-unknown", "title": "Gateway error", "status": 502, "detail": "connection lost"}


def _client(answers: list[httpx.Response]) -> tuple[Memoturn, list[str]]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return answers.pop(0)

    client = Memoturn("http://gateway.invalid", retries=3, backoff=0.001)
    client.http = httpx.Client(base_url=client.url, transport=httpx.MockTransport(handler))
    return client, seen


def test_an_idempotent_call_is_sent_again_after_the_gateway_lost_its_node():
    client, seen = _client(
        [
            httpx.Response(502, json=LOST, headers={"content-type": "application/problem+json"}),
            httpx.Response(200, json={"key": "k", "txid": 7}, headers={"memoturn-txid": "7"}),
        ]
    )
    assert client.database("d").kv_put("k", 1).data["txid"] == 7
    assert seen == ["PUT", "PUT"]


def test_any_other_call_gets_the_outcome_unknown_at_once():
    client, seen = _client([httpx.Response(502, json=LOST, headers={"content-type": "application/problem+json"})])
    with pytest.raises(ProblemError) as exc:
        client.create_database("d")
    assert exc.value.type == "outcome-unknown" and seen == ["POST"]


def test_other_502s_are_not_retried():
    client, seen = _client([httpx.Response(502, text="bad gateway")])
    with pytest.raises(ProblemError):
        client.database("d").kv_put("k", 1)
    assert seen == ["PUT"]
