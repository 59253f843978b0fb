"""Read-after-write eventual consistency, switched on per account and region, for chosen reads.

AWS documents several reads as eventually consistent: a read right after a write may still answer the
value from before it (IAM User Guide, "Changes that I make are not always immediately visible"; Amazon
EC2 Developer Guide, "Eventual consistency in the Amazon EC2 API"). moto answers every read with the
new value at once. With the switch on, a write makes the reads it affects answer what they answered
just before it (the value, or the error such as NoSuchEntity) for the next N reads, counted in calls,
not seconds, so that no test depends on timing; then the new value.

The services' extensions (ext_ec2.py, ext_iam.py) call `wrap()` in their `install()` for their own
operations, after they have put their own methods in place. State lives on moto's backend objects
(`tapguard_consistency`), so `POST /moto-api/reset` clears it with everything else.

Test control (JSON body; `region` defaults to us-east-1, and is ignored by IAM, a global service):
- `POST /tapguard/consistency/behave` `{"account": "123456789012", "region": "eu-west-1", "stale_reads": 3,
  "reads": ["GetEbsEncryptionByDefault"]}`: from now on, each write answers the reads it affects with
  the previous value for `stale_reads` reads (0 turns it off). `reads` (optional) limits it to those
  reads; absent, every read that `wrap()` was given. Answers what is now switched on.
The harness's own (marked) calls neither see stale values nor use up the count: they set and inspect a
test's scene.
"""

import copy

import faults

DEFAULT_REGION = "us-east-1"

# read operation -> (response class, backend of a response, list of (account, region) -> backend)
READS: dict = {}
_CONTROL_INSTALLED = []


def _from_harness(response) -> bool:
    headers = response.headers or {}
    return bool(headers.get("x-tapguard-harness") or headers.get("X-Tapguard-Harness"))


def _state(backend) -> dict:
    state = getattr(backend, "tapguard_consistency", None)
    if state is None:
        state = {"stale_reads": 0, "reads": None, "pending": {}}
        backend.tapguard_consistency = state
    return state


def _snake(operation: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in operation).lstrip("_")


def _answer_of(response, read: str):
    """What `read` answers now, as the response method gives it (a result, or the error it raises)."""
    try:
        return ("value", copy.deepcopy(getattr(response, _snake(read))()))
    except Exception as err:  # noqa: BLE001 - the read's own error (NoSuchEntity, ...) is its answer
        return ("error", err)


def wrap(response_class, backend_of, backend_for, writes: dict) -> None:
    """`writes`: write operation -> the read operations it affects (names as AWS spells them).
    `backend_of(response)` is the moto backend a request works on; `backend_for(account, region)` the
    one the control switches."""
    reads = sorted({r for affected in writes.values() for r in affected})
    for read in reads:
        READS[read] = backend_for
        method = getattr(response_class, _snake(read))

        def stale_read(self, _method=method, _read=read):
            if _from_harness(self):
                return _method(self)
            pending = _state(backend_of(self))["pending"]
            entry = pending.get(_read)
            if entry is None:
                return _method(self)
            entry["left"] -= 1
            if entry["left"] <= 0:
                del pending[_read]
            kind, answer = entry["answer"]
            if kind == "error":
                raise answer
            return copy.deepcopy(answer)

        setattr(response_class, _snake(read), stale_read)

    for write, affected in writes.items():
        method = getattr(response_class, _snake(write))

        def stale_after(self, _method=method, _affected=tuple(affected)):
            if _from_harness(self):
                return _method(self)
            state = _state(backend_of(self))
            chosen = [r for r in _affected if state["stale_reads"] > 0 and (state["reads"] is None or r in state["reads"])]
            before = {r: state["pending"][r]["answer"] if r in state["pending"] else _answer_of(self, r) for r in chosen}
            answer = _method(self)
            for read in chosen:
                state["pending"][read] = {"answer": before[read], "left": state["stale_reads"]}
            return answer

        setattr(response_class, _snake(write), stale_after)

    if not _CONTROL_INSTALLED:
        faults.CONTROLS[("POST", "/tapguard/consistency/behave")] = behave
        _CONTROL_INSTALLED.append(True)


def behave(body: dict) -> dict:
    account = str(body.get("account") or "")
    if len(account) != 12 or not account.isdigit():
        raise ValueError("'account' must be a 12-digit account id")
    unknown = set(body) - {"account", "region", "stale_reads", "reads"}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}; known: account, region, stale_reads, reads")
    chosen = body.get("reads")
    if chosen is not None:
        missing = [r for r in chosen if r not in READS]
        if missing:
            raise ValueError(f"not eventually consistent here: {missing}; known: {sorted(READS)}")
    stale = int(body.get("stale_reads", 0))
    if stale < 0:
        raise ValueError("'stale_reads' must be >= 0")
    region = body.get("region") or DEFAULT_REGION
    switched = {}
    for read, backend_for in READS.items():
        state = _state(backend_for(account, region))
        state["stale_reads"] = stale
        state["reads"] = None if chosen is None else list(chosen)
        if stale == 0:
            state["pending"].clear()
        if stale and (chosen is None or read in chosen):
            switched[read] = stale
    return {"stale_reads": switched}
