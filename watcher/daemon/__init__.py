"""The long-running daemon: HTTP ingestion, the drop folder and the dispatcher."""
