"""Agent-memory traffic for Locust, against a gateway (or a single node).

Profiles are picked with a Zipf-like popularity (a few hot, a long tail). The mix of
operations, the number of profiles and the durability are tunable by environment:

    MEMOTURN_LOAD_PROFILES=200        number of profiles ("load--p0" …)
    MEMOTURN_LOAD_NAMESPACE=load
    MEMOTURN_LOAD_ZIPF=1.1            popularity exponent
    MEMOTURN_LOAD_MIX="memory_write=3,recall=2,kv_put=4,kv_get=6,doc_insert=1,doc_query=1,fork=0.05"
    MEMOTURN_LOAD_DURABILITY=standard|durable
    MEMOTURN_LOAD_CLIENT_VECTORS=0|1  send 384-d vectors instead of letting the server embed
    MEMOTURN_LOAD_EACH_FIRST=0|1      every user runs each operation of the mix once before it
                                      (a short smoke run then reaches the rare ones too)
    MEMOTURN_TOKEN=…                  bearer token (admin or the namespace's)

Run it with ``locust -f loadtest/locustfile.py --host http://gateway:7400`` against a real
cluster (docs/loadtest.md), or through ``make loadtest`` against a local one.
"""

from __future__ import annotations

import itertools
import os
import random
import uuid

from locust import FastHttpUser, between, events

NS = os.environ.get("MEMOTURN_LOAD_NAMESPACE", "load")
PROFILES = int(os.environ.get("MEMOTURN_LOAD_PROFILES", "200"))
ZIPF = float(os.environ.get("MEMOTURN_LOAD_ZIPF", "1.1"))
DURABILITY = os.environ.get("MEMOTURN_LOAD_DURABILITY", "standard")
CLIENT_VECTORS = os.environ.get("MEMOTURN_LOAD_CLIENT_VECTORS", "0") == "1"
TOKEN = os.environ.get("MEMOTURN_TOKEN")
MIX = {
    k: float(v)
    for k, v in (
        p.split("=")
        for p in os.environ.get(
            "MEMOTURN_LOAD_MIX", "memory_write=3,recall=2,kv_put=4,kv_get=6,doc_insert=1,doc_query=1,fork=0.05"
        ).split(",")
    )
}
_CUM = list(itertools.accumulate(1.0 / (i + 1) ** ZIPF for i in range(PROFILES)))

SUBJECTS = ["coffee", "city", "job", "pet", "team", "editor", "language", "sport", "music", "project"]
FACTS = [
    "prefers {x} in the morning",
    "moved to a new {x}",
    "asked about the {x} again",
    "likes the {x} a lot",
    "is learning about {x}",
    "mentioned their {x} twice",
    "wants reminders about the {x}",
]
WORDS = [
    "green tea",
    "Lisbon",
    "release plan",
    "golden retriever",
    "kanban board",
    "vim",
    "Portuguese",
    "half marathon",
    "jazz",
    "migration",
    "budget",
    "garden",
    "podcast",
    "chess",
    "deadline",
]


def pick_profile() -> str:
    i = random.choices(range(PROFILES), cum_weights=_CUM)[0]
    return f"p{i}"


def headers(durable: bool = False) -> dict[str, str]:
    h = {"Authorization": f"Bearer {TOKEN}"} if TOKEN else {}
    if durable and DURABILITY == "durable":
        h["Memoturn-Durability"] = "durable"
    return h


def vector() -> list[float]:
    v = [random.gauss(0, 1) for _ in range(384)]
    n = sum(x * x for x in v) ** 0.5
    return [x / n for x in v]


@events.test_start.add_listener
def create_profiles(environment, **_kwargs):
    """Every profile exists before traffic starts (KV and document routes need the database)."""
    import httpx

    with httpx.Client(base_url=environment.host, timeout=30, headers=headers()) as client:
        for i in range(PROFILES):
            r = client.post("/v1/databases", json={"name": f"{NS}--p{i}"})
            if r.status_code not in (201, 409):
                raise RuntimeError(f"cannot create {NS}--p{i}: {r.status_code} {r.text}")


def memory_write(self: FastHttpUser) -> None:
    p = pick_profile()
    subject = random.choice(SUBJECTS)
    body = {
        "type": random.choice(["fact", "preference", "event"]),
        "content": f"{p} " + random.choice(FACTS).format(x=random.choice(WORDS)),
        "subject": subject if random.random() < 0.3 else None,
        "tags": [subject],
    }
    if CLIENT_VECTORS:
        body["embedding"] = vector()
    self.client.post(
        f"/v1/namespaces/{NS}/profiles/{p}/memories", json=body, headers=headers(True), name="memory_write"
    )


def recall(self: FastHttpUser) -> None:
    p = pick_profile()
    body = {"query": f"what does {p} think about the {random.choice(WORDS)}?", "limit": 5}
    if CLIENT_VECTORS:
        body["embedding"] = vector()
    self.client.post(f"/v1/namespaces/{NS}/profiles/{p}/recall", json=body, headers=headers(), name="recall")


def kv_put(self: FastHttpUser) -> None:
    p = pick_profile()
    key = f"session/{random.randrange(50)}"
    self.client.put(
        f"/v1/databases/{NS}--{p}/kv/{key}",
        json={"value": {"turn": random.randrange(1000)}, "ttl_seconds": 300},
        headers=headers(True),
        name="kv_put",
    )


def kv_get(self: FastHttpUser) -> None:
    p = pick_profile()
    with self.client.get(
        f"/v1/databases/{NS}--{p}/kv/session/{random.randrange(50)}",
        headers=headers(),
        name="kv_get",
        catch_response=True,
    ) as r:
        if r.status_code in (200, 404):  # a key not written yet is an answer, not an error
            r.success()


def doc_insert(self: FastHttpUser) -> None:
    p = pick_profile()
    doc = {"body": {"topic": random.choice(WORDS), "priority": random.randrange(5), "done": random.random() < 0.5}}
    self.client.post(
        f"/v1/databases/{NS}--{p}/collections/tasks/documents", json=doc, headers=headers(True), name="doc_insert"
    )


def doc_query(self: FastHttpUser) -> None:
    p = pick_profile()
    q = {
        "filter": {"priority": {"$gte": random.randrange(5)}, "done": False},
        "sort": [{"path": "priority", "order": "desc"}],
        "limit": 10,
    }
    self.client.post(f"/v1/databases/{NS}--{p}/collections/tasks/query", json=q, headers=headers(), name="doc_query")


def fork(self: FastHttpUser) -> None:
    p = pick_profile()
    self.client.post(
        f"/v1/databases/{NS}--{p}/branches",
        json={"name": f"scratch-{uuid.uuid4().hex[:8]}", "ttl_seconds": 30},
        headers=headers(),
        name="fork_burner",
    )


OPERATIONS = {f.__name__: f for f in (memory_write, recall, kv_put, kv_get, doc_insert, doc_query, fork)}
if unknown := set(MIX) - set(OPERATIONS):
    raise SystemExit(f"MEMOTURN_LOAD_MIX names unknown operations: {sorted(unknown)}")


class AgentUser(FastHttpUser):
    """One agent: picks a profile by popularity and an operation by the mix, back to back."""

    wait_time = between(0.0, 0.02)
    # The mix: weights in hundredths, operations with weight 0 left out.
    tasks = {OPERATIONS[name]: max(1, int(weight * 100)) for name, weight in MIX.items() if weight > 0}

    def on_start(self) -> None:
        if os.environ.get("MEMOTURN_LOAD_EACH_FIRST") == "1":
            for name, weight in MIX.items():
                if weight > 0:
                    OPERATIONS[name](self)
