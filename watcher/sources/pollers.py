"""The pollers a config asks for: one fetcher class per platform, built once at start.

Adding a platform poller is one ``poll_<platform>.py`` with a fetcher (a
``CredentialSpec`` with a ``fetch()``) and one entry in ``build_pollers`` below.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping

import httpx

from watcher.config import Settings
from watcher.sources.poll import TIMEOUT_SECONDS, Api, Fetcher, Ingest, Poller
from watcher.sources.poll_amazon import AmazonFetcher
from watcher.sources.poll_shopee import ShopeeFetcher
from watcher.store.refresh_tokens import RefreshTokens


def build_pollers(settings: Settings, ingest: Ingest, *, stop: threading.Event,
                  env: Mapping[str, str] | None = None,
                  client: httpx.Client | None = None,
                  tokens: RefreshTokens | None = None) -> list[Poller]:
    """Every enabled poller; a missing credential or variable is a ConfigError now.

    ``tokens`` keeps the refresh tokens a platform rotates (the daemon passes its
    database); without it they last as long as the process."""
    env = os.environ if env is None else env
    file = str(settings.config_file) if settings.config_file else None
    enabled = {name: config for name, config in settings.pollers.items() if config.enabled}
    if not enabled:
        return []
    http = client or httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False)
    pollers = []
    for name, config in enabled.items():
        api = Api(config.source, http)
        fetcher: Fetcher
        if config.source == "shopee":
            credentials = ShopeeFetcher.resolve(name, config, env, file)
            fetcher = ShopeeFetcher(config, credentials, api, file=file, name=name,
                                    tokens=tokens)
        else:
            credentials = AmazonFetcher.resolve(name, config, env, file)
            fetcher = AmazonFetcher(config, credentials, api, wait=stop.wait, file=file,
                                    name=name)
        pollers.append(Poller(name, config, fetcher, ingest))
    return pollers


def start_pollers(pollers: Iterable[Poller], stop: threading.Event) -> list[threading.Thread]:
    """One daemon thread per poller, named after it."""
    threads = []
    for poller in pollers:
        thread = threading.Thread(target=poller.run_forever, args=(stop,),
                                  name=f"poller-{poller.name}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads
