"""The assessment: how an operator's month, quarter or year is judged.

Read in this order:

* ``targets``: the targets file, filling the targets snapshots do not carry;
* ``rollup``: how several values of one metric make one (months into a quarter,
  stores into an operator);
* ``weights``: role-tier weights and the pass mark (the ``scorecard:`` config key);
* ``roster``: who each operator is (tier, team, manager), the ``roster:`` file;
* ``scorecard``: the card itself, the one verdict per operator and period;
* ``streaks``: the PIP arithmetic over consecutive monthly verdicts;
* ``pip``: the PIP as a plan (goals, checkpoints, end, a manager's verdict);
* ``scorecard_report``: the card laid out for a terminal or a printable page;
* ``monthly_report``: a manager's month: the team's cards and the PIPs to act on.

The metric vocabulary (``watcher.indicators``) stays outside: validation, rules
and channels read it too, and it does not depend on how anyone is judged.
"""
