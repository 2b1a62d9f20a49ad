"""Coverage-guided fuzzing in the suite: a short atheris run of each harness in fuzz/
(the long run is its own command, see fuzz/README.md), and what the long runs found,
pinned as plain tests."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from watcher import yamlfile
from watcher.errors import ConfigError, InputError
from watcher.rules.loader import load_pack
from watcher.validation import Format, RawRecord, Rejection, read_records

FUZZ = ROOT / "fuzz"


class TestFuzzHarness:
    @pytest.mark.parametrize(("harness", "corpus"), [("fuzz_snapshot.py", "snapshot"),
                                                     ("fuzz_rules.py", "rules")])
    def test_a_short_run_from_the_seed_corpus_finds_nothing(self, tmp_path: Path,
                                                            harness: str, corpus: str):
        if importlib.util.find_spec("atheris") is None:
            pytest.skip("atheris is not installed (pip install -e '.[test]')")
        # libFuzzer adds what it finds to the first corpus folder: a copy, not fuzz/corpus
        shutil.copytree(FUZZ / "corpus" / corpus, tmp_path / "corpus")
        run = subprocess.run(
            [sys.executable, str(FUZZ / harness), "-max_total_time=8", "-timeout=10",
             f"-artifact_prefix={tmp_path}/", str(tmp_path / "corpus")],
            cwd=tmp_path, capture_output=True, text=True, timeout=90)
        output = run.stdout + run.stderr
        assert run.returncode == 0, output[-4000:]
        assert "Done" in output and not list(tmp_path.glob("crash-*"))


class TestParserFindings:
    """Inputs the snapshot fuzzer turned up: each was an uncaught exception (a 500)."""

    def test_a_bare_carriage_return_in_csv_ends_a_line(self):
        records = list(read_records(b"store,platform,period,metrics.gmv\rs1,amazon,2026-10,5\n",
                                    Format.CSV))
        [record] = records
        assert isinstance(record, RawRecord) and record.data["store"] == "s1"

    def test_a_csv_cell_beyond_the_csv_field_limit_rejects_its_line_only(self):
        body = b"store,metrics.gmv\n" + b"x" * 200_000 + b",1\ns2,5\n"
        refused, good = list(read_records(body, Format.CSV))
        assert isinstance(refused, Rejection) and refused.location == "line 2"
        assert "SHEET_CELL_MAX_BYTES" in refused.error and len(refused.raw) < 1000
        assert isinstance(good, RawRecord) and good.data["store"] == "s2"

    @pytest.mark.parametrize(("header", "says"), [
        (b"store,metrics,metrics.gmv", "both 'metrics' and 'metrics.<id>'"),
        (b"store,metrics.gmv,metrics.gmv", "'metrics.gmv' more than once"),
        (b"store,segment.x\x00,metrics.gmv", "column 2 contains a NUL character"),
    ])
    def test_a_csv_header_without_one_meaning_is_refused(self, header: bytes, says: str):
        with pytest.raises(InputError) as caught:
            list(read_records(header + b"\ns1,5,6\n", Format.CSV))
        assert caught.value.location == "line 1" and says in str(caught.value)


class TestRuleLoaderFindings:
    """Rule files the loader fuzzer turned up: each was a TypeError, not a ConfigError."""

    def test_a_list_as_a_yaml_key_names_file_and_line(self):
        with pytest.raises(ConfigError) as caught:
            yamlfile.loads("rules:\n? - id: x\n: 1\n", "r.yaml")
        assert (caught.value.file, caught.value.line) == ("r.yaml", 2)
        assert "a key must be a plain value" in str(caught.value)

    def test_a_boolean_top_level_key_is_an_unknown_key(self, tmp_path: Path):
        path = tmp_path / "r.yaml"
        path.write_text("rules: []\ntrue: 1\nzzz: 2\n", encoding="utf-8")
        with pytest.raises(ConfigError) as caught:
            load_pack(path)
        assert caught.value.key == "True" and caught.value.line == 2


class TestRuleShapesOfIssue14:
    """The seeds fuzz_rules.py starts from for issue 14's shapes (its generator grows them:
    long or/and chains, deep parentheses, aliases, unknown metrics, the 512 cliff)."""

    @pytest.mark.parametrize("seed", ["regression-or-513.yaml", "regression-parens-5000.yaml",
                                      "regression-billion-laughs.yaml",
                                      "regression-alias-cycle.yaml",
                                      "regression-unknown-metric.yaml"])
    def test_each_is_refused_naming_file_and_line(self, seed: str):
        path = FUZZ / "corpus" / "rules" / seed
        with pytest.raises(ConfigError) as caught:
            load_pack(path)
        assert caught.value.file == str(path) and caught.value.line is not None
