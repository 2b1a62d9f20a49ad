"""Running where it is installed: packaged defaults, `watcher init`, one database.

The wheel itself is built and run end to end in tests/test_wheel_install.py; these
are the same promises checked in-process, fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.conftest import ROOT, jsonl, snapshot
from watcher import defaults
from watcher.channels.render import DEFAULT_TEMPLATES
from watcher.cli import app
from watcher.config import Settings, load_settings
from watcher.rules.loader import load_pack

runner = CliRunner()


def watcher(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["--log-json", *args])
    return result.exit_code, result.output


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user with no config and no WATCHER_DATABASE_URL, their data folder in tmp."""
    for name in ("WATCHER_CONFIG", "WATCHER_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


class TestPackagedDefaults:
    def test_without_a_config_the_built_in_pack_templates_and_mappings_are_used(self):
        settings = Settings()
        assert settings.rules == defaults.rules()
        assert settings.mappings == defaults.mappings()
        assert defaults.templates() == DEFAULT_TEMPLATES
        assert {r.id for r in load_pack(settings.rules).rules} >= {
            "account-health-low", "pip-recommended", "dispute-rate-high"}

    def test_the_package_data_is_found_inside_the_package_not_by_a_relative_path(self):
        package = Path(defaults.__file__).resolve().parent
        for name in ("rules", "templates", "mappings", "examples"):
            assert (package / name).exists(), name
        assert (defaults.rules() / "default" / "tests").is_dir()
        assert (defaults.templates() / "console.j2").is_file()
        assert (defaults.mappings() / "saihu.yaml").is_file()
        assert (defaults.examples() / "snapshots.jsonl").is_file()

    def test_in_a_clone_they_are_the_repository_copies_users_edit(self):
        # the symlinks point at the top-level folders, so there is one copy to edit
        assert defaults.rules() == (ROOT / "rules").resolve()
        assert defaults.templates() == (ROOT / "channels" / "templates").resolve()
        assert defaults.mappings() == (ROOT / "mappings").resolve()
        assert defaults.examples() == (ROOT / "examples").resolve()

    def test_a_config_that_names_its_own_copies_uses_them(self, tmp_path: Path):
        (tmp_path / "c.yaml").write_text("rules: mine\ntemplates: t\nmappings: m\n")
        settings = load_settings(tmp_path / "c.yaml", env={})
        assert (settings.rules, settings.templates, settings.mappings) == (
            tmp_path / "mine", tmp_path / "t", tmp_path / "m")


class TestDatabaseLocation:
    def test_with_a_config_the_file_lives_next_to_it(self, tmp_path: Path):
        (tmp_path / "c.yaml").write_text("port: 9000\n")
        settings = load_settings(tmp_path / "c.yaml", env={})
        assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'watcher.db'}"

    def test_without_a_config_it_is_the_user_data_folder_whatever_the_current_one(
            self, home: Path, monkeypatch: pytest.MonkeyPatch):
        first = load_settings(env={}).database_url
        monkeypatch.chdir(home)
        assert load_settings(env={}).database_url == first
        assert first == f"sqlite:///{home / 'data' / 'kpi-watch' / 'watcher.db'}"

    def test_the_environment_and_the_config_still_win(self, tmp_path: Path):
        (tmp_path / "c.yaml").write_text("database_url: sqlite:///x.db\n")
        assert load_settings(tmp_path / "c.yaml", env={}).database_url == "sqlite:///x.db"
        assert load_settings(env={"WATCHER_DATABASE_URL": "sqlite:///y.db"}
                             ).database_url == "sqlite:///y.db"

    @pytest.mark.parametrize("command", [
        ["incidents", "list"], ["incidents", "show", "1"], ["rejected", "list"],
        ["scorecard", "li.wei", "--period", "2026-10"], ["channels", "status"],
        ["silences", "list"], ["tokens", "list"]])
    def test_a_read_command_on_a_missing_database_says_so_and_creates_nothing(
            self, home: Path, command: list[str]):
        code, out = watcher(*command)
        expected = home / "data" / "kpi-watch" / "watcher.db"
        assert code == 1
        assert f"no database at {expected}" in out and "--config" in out
        assert not expected.exists() and not Path("watcher.db").exists()

    def test_ingest_from_one_folder_is_listed_from_another(
            self, home: Path, monkeypatch: pytest.MonkeyPatch):
        data = home / "one.jsonl"
        data.write_bytes(jsonl(snapshot(penalty_count=2)))
        assert watcher("ingest", str(data))[0] == 0
        monkeypatch.chdir(home)
        code, out = watcher("incidents", "list", "--format", "json")
        assert code == 0 and json.loads(out)["incidents"][0]["rule"] == "penalty-received"


class TestInit:
    def test_writes_a_working_commented_starting_point(self, tmp_path: Path):
        code, out = watcher("init", str(tmp_path / "kw"))
        assert code == 0, out
        folder = tmp_path / "kw"
        assert {p.name for p in folder.iterdir()} == {
            "config.yaml", "rules", "templates", "mappings", "targets.yaml", "roster.yaml",
            ".env.example"}
        text = (folder / "config.yaml").read_text()
        assert "# roster: roster.yaml" in text and "# database_url:" in text
        settings = load_settings(folder / "config.yaml", env={})
        assert settings.rules == folder / "rules" and settings.templates == folder / "templates"
        assert settings.mappings == folder / "mappings"
        assert settings.targets == folder / "targets.yaml"
        assert settings.database_url == f"sqlite:///{folder.resolve() / 'watcher.db'}"
        assert yaml.safe_load((folder / "roster.yaml").read_text()) is None
        assert "SMTP_PASSWORD" in (folder / ".env.example").read_text()
        # the copied pack is the built-in one, tests included, and they pass
        assert (folder / "rules" / "default" / "tests" / "pip.yaml").is_file()
        assert not (folder / "rules").is_symlink()
        code, out = watcher("rules", "test", "--config", str(folder / "config.yaml"))
        assert code == 0 and " 0 failed" in out
        code, out = watcher("rules", "check", "--config", str(folder / "config.yaml"))
        assert code == 0, out

    def test_every_key_of_the_settings_is_shown_in_the_config(self, tmp_path: Path):
        watcher("init", str(tmp_path))
        text = (tmp_path / "config.yaml").read_text()
        shown = {"database_url", "rules", "templates", "mappings", "targets", "drop_folder",
                 "host", "port", "public_url", "default_channels", "channels", "routes",
                 "inhibit", "reopen_hold", "scorecard", "pollers", "nats",
                 "max_body_bytes", "max_file_bytes", "claim_lease_seconds", "retention"}
        for key in shown:
            assert f"{key}:" in text, key

    def test_refuses_to_overwrite_naming_the_file_unless_forced(self, tmp_path: Path):
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "mine.yaml").write_text("rules: []\n")
        code, out = watcher("init", str(tmp_path))
        assert code == 1 and f"{tmp_path / 'rules'} already exists" in out
        assert not (tmp_path / "config.yaml").exists()  # nothing half-written
        code, out = watcher("init", str(tmp_path), "--force")
        assert code == 0 and not (tmp_path / "rules" / "mine.yaml").exists()
        assert (tmp_path / "config.yaml").is_file()
