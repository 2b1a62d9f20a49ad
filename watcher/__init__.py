"""kpi-watch: ingest KPI snapshots, evaluate YAML rules on durable-rules, keep incidents."""

__version__ = "0.1.0"
