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


# -- HTTP requests (watcher/daemon/http.py) ---------------------------------------------------

# The default of the ``max_body_bytes`` setting: a request body is counted as it
# arrives (Content-Length or chunked alike) and refused with 413 at this size.
MAX_BODY_BYTES: Final = 20_000_000


# -- delivery (watcher/dispatcher.py, watcher/channels/) --------------------------------------



# -- people: roster and PIP plans (watcher/assessment/roster.py, watcher/assessment/pip.py) ---

ROSTER_MAX_BYTES: Final = 5_000_000  # a roster file (thousands of people fit in far less)
ROSTER_MAX_FIELD: Final = 200  # an operator id, tier, team, manager or display name
PIP_MAX_DAYS: Final = 366  # a plan's length, or an extension
PIP_MAX_GOALS: Final = 50  # goals of one plan
PIP_MAX_NOTE: Final = 5000  # a review or closing note, in characters
