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
# Checked before anything is compiled (yamlfile.py, rules/loader.py, rules/expression.py,
# rules/model.py), then by a trial compile in a child process (rules/trial.py).

RULE_FILE_MAX_BYTES: Final = 1_000_000
"""Size of one rule file (the default pack's largest is 4 kB)."""
RULE_PACK_MAX_RULES: Final = 1_000
"""Rules in one pack, all files together."""
RULE_MAX_VARIANTS: Final = 32
"""Segment variants of one rule (each is a durable rule of its own)."""
RULE_CONDITION_MAX_CHARS: Final = 4_000
"""Length of one condition's text."""
RULE_CONDITION_MAX_TERMS: Final = 64
"""Comparisons in one condition (``a > 1 or b < 2`` has two)."""
RULE_CONDITION_MAX_DEPTH: Final = 8
"""Parentheses nested inside one another in one condition."""
RULE_ENGINE_MAX_BRANCHES: Final = 512
"""Distinct comparisons that may follow one node of the compiled rule network: durable-rules
keeps them in a table of 512 slots (``NEXT_BUCKET_LENGTH``) and spins forever on the 513th."""
RULE_COMPILE_TIMEOUT_SECONDS: Final = 10.0
"""The trial compile of a pack runs in a child process, killed after this long."""
RULE_COMPILE_MAX_SECONDS: Final = 0.2
"""Longest compile (CPU time in the trial) of a pack the daemon accepts: durable-rules holds
the GIL while it compiles, so the daemon pauses on a reload, and in a process that already
holds rulesets the same compile takes up to 4 times as long (default pack: 10 ms)."""
YAML_MAX_DEPTH: Final = 50
"""Nesting of lists and mappings in any YAML file kpi-watch reads (rules, targets, config)."""
YAML_MAX_ALIAS_NODES: Final = 10_000
"""Nodes that aliases (``*name``) may add to a YAML document when expanded: a few kB of
nested aliases ("billion laughs") would otherwise expand to gigabytes."""


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

# The ranges of metrics that have no natural bound (watcher/indicators.py): a value past
# them is a unit or export error (seconds sent as hours, an overflowed cell), never data.
METRIC_MAX_HOURS: Final = 8_760.0
"""A duration in hours (a first response, an order's handling): one year."""
METRIC_MAX_DAYS: Final = 366.0
"""A duration in days (preparation time): one year."""
METRIC_MAX_VALUE: Final = 1e15
"""Any other count, amount or ratio without a bound of its own (a pack's declared metric
too): beyond every real shop's figures, and within what a float holds to the unit."""

# -- spreadsheets (watcher/sources/sheets.py, watcher/sources/tabular.py) ----------------------

SHEET_CELL_MAX_BYTES: Final = 131_072
"""One cell of an uploaded CSV or XLSX file, in UTF-8 bytes: Excel's own cell holds at most
32,767 characters, which fits in any script. A larger cell rejects its row alone."""


# -- HTTP requests (watcher/daemon/http.py) ---------------------------------------------------

# The default of the ``max_body_bytes`` setting: a request body is counted as it
# arrives (Content-Length or chunked alike) and refused with 413 at this size.
MAX_BODY_BYTES: Final = 20_000_000


# -- delivery (watcher/dispatcher.py, watcher/channels/) --------------------------------------

# How long a claim on a notification lasts without renewal. A live dispatcher renews
# its claims every third of this while it sends (however long a send takes), so this is
# only how long a dead replica's claims wait before another replica sends them.
CLAIM_LEASE_SECONDS: Final = 10.0
# Messages a dispatcher claims per channel per round: only what it is about to send, so
# that another replica finds the rest due (and a dead one held little).
CLAIM_MESSAGES_PER_CHANNEL: Final = 5
# Send rates per apprise service (URL scheme), shared by all replicas: a channel's
# `rate:` overrides them. WeCom and DingTalk group bots take 20 messages a minute, a
# Feishu/Lark bot about 100, a Slack webhook about one a second (bursts allowed).
DEFAULT_RATES: Final = {"wecombot": "20/min", "dingtalk": "20/min", "feishu": "100/min",
                        "lark": "100/min", "slack": "60/min"}
# A digest names at most this many stores (the worst first); it names fewer when the
# service's message size limit (watcher/channels/limits.py) leaves no room for them.
DIGEST_MAX_STORES: Final = 10
# A route's weekly digest (watcher/weekly_digest.py) names, per team, at most this many
# incidents in each list (opened, still open, resolved; the worst first) and at most
# WEEKLY_MAX_STORES worst stores; fewer when the service's size limit leaves no room, and
# it says how many it does not name. The counts always cover every incident.
WEEKLY_MAX_LINES: Final = 10
WEEKLY_MAX_STORES: Final = 5


# -- people: roster and PIP plans (watcher/assessment/roster.py, watcher/assessment/pip.py) ---

ROSTER_MAX_BYTES: Final = 5_000_000  # a roster file (thousands of people fit in far less)
ROSTER_MAX_FIELD: Final = 200  # an operator id, tier, team, manager or display name
PIP_MAX_DAYS: Final = 366  # a plan's length, or an extension
PIP_MAX_GOALS: Final = 50  # goals of one plan
PIP_MAX_NOTE: Final = 5000  # a review or closing note, in characters
# an operator's score history (GET /v1/scorecards/{operator}/history?count=N; the card page
# draws 12): one card is built per period, from one query over the whole span
SCORE_HISTORY_MAX_PERIODS: Final = 36


# -- noise control: for:, reopen_hold (watcher/rules/model.py, watcher/holding.py) --------------

FOR_MAX_PERIODS: Final = 1_000
"""``for: N``: periods in a row a condition must hold before its incident opens."""
FOR_MAX_SECONDS: Final = 366 * 86400
"""``for: 10m``: the longest wait (a pending run is kept in the store that long)."""

# -- runbooks (watcher/rules/model.py) --------------------------------------------------------

# A rule's runbook text, per language: a few steps, not a manual (link to the manual). It
# rides along in every notification, where a chat service's size limit cuts it first.
RUNBOOK_TEXT_MAX: Final = 1000
RUNBOOK_LINK_MAX: Final = 500

# -- rules on history (watcher/rules/history.py, change.py, trend.py) -------------------------

# The longest window a change rule's baseline or a trend rule's fit may span (`baseline:`,
# `over:`); with `within:` as well. A batch reads this much history per store at most.
HISTORY_MAX_WINDOW_DAYS: Final = 366

# -- kept views: the health board and the team cards (watcher/assessment/kept.py) ----------

SNAPSHOTS_SETTLE_SECONDS: Final = 60
"""How late a snapshot transaction may commit after its clock was read (its batch's length,
plus the clock skew between replicas): a kept board or team card looks this far back
before the last change for changes it has not seen (``repository.SnapshotsMark``)."""
KEPT_TEAM_PERIODS: Final = 12
"""Periods whose team cards are kept (and refreshed after each batch) at once."""
KEPT_POLL_SECONDS: Final = 5.0
"""How often the daemon looks for batches other replicas committed, to refresh its kept
board and team cards before anyone asks (its own batches refresh them at once)."""
KEPT_REFRESH_GAP_SECONDS: Final = 1.0
"""The least time between two background refreshes of the kept views while batches keep
coming, so that refreshing never competes with ingestion for the interpreter."""
