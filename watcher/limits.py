"""Every limit on what kpi-watch accepts, in one place.

Inputs come from people and machines we do not control: a rule file someone edits,
a record an ERP exports, a body a browser sends. Each limit below is what keeps one
bad input from stopping, slowing or failing anything beside it. A refusal names the
limit by the constant's name, so a user can find it here and in docs/limits.md,
which explains each one. Limits users may need to raise are settings (the settings
model reads its defaults from here); the others are fixed because the product's
safety depends on them.
"""

from __future__ import annotations

from typing import Final

# -- rule files (watcher/rules/loader.py) ---------------------------------------------------


# -- records and snapshots (watcher/validation.py, watcher/snapshot.py) -----------------------
# Checked before a record is trusted: a body is parsed by orjson, which stops at 1,024
# levels without recursing, and a record is refused by its sizes before it reaches the
# store or the rule engine. MAX_METRICS, MAX_TARGETS and MAX_SEGMENT_KEYS together keep
# every accepted snapshot within what durable-rules takes in one fact
# (ENGINE_MAX_FACT_ATTRIBUTES; docs/limits.md gives the sum, tests/test_poison.py builds
# the widest snapshot they allow).
MAX_RECORDS_PER_BODY: Final = 50_000   # records in one HTTP body or NATS message
MAX_NESTING_DEPTH: Final = 10          # levels in one record (a snapshot needs 3)
MAX_KEY_LENGTH: Final = 128            # characters in a field name, metric id, segment key
MAX_STRING_LENGTH: Final = 4_096       # characters in a top-level text or a segment value
MAX_METRICS: Final = 100               # metric keys in one snapshot
MAX_TARGETS: Final = 20                # target keys in one snapshot
MAX_SEGMENT_KEYS: Final = 12           # segment keys in one snapshot
# durable-rules 2.0.28 holds at most 254 attributes in a fact, one of them its own ``sid``
# (the C engine's MAX_OBJECT_PROPERTIES is 255; the 255th is refused with error 302).
ENGINE_MAX_FACT_ATTRIBUTES: Final = 253


# -- HTTP requests (watcher/daemon/http.py) ---------------------------------------------------


# -- delivery (watcher/dispatcher.py, watcher/channels/) --------------------------------------

