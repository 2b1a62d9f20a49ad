"""Coverage-guided fuzzing (atheris) of the rule-file loader.

The contract, checked on every input: a rule file loads into a rule pack, or
is refused with a ``ConfigError`` that names the file (and, where there is
one, the line). Anything else (another exception, a hang) is a finding.

    python fuzz/fuzz_rules.py -max_total_time=600 -timeout=10 fuzz/corpus/rules
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["watcher"]):
    from watcher.errors import ConfigError
    from watcher.rules.loader import load_pack
    from watcher.rules.model import RulePack

FILE = Path(tempfile.mkdtemp(prefix="fuzz-rules-")) / "rules.yaml"


def test_one_input(data: bytes) -> None:
    FILE.write_bytes(data)
    try:
        pack = load_pack(FILE)
    except ConfigError as exc:
        assert exc.file == str(FILE), exc
        return
    assert isinstance(pack, RulePack)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
