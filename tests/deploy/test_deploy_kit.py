"""The deployment kit in deploy/, checked as specifications without Docker or a cluster.

Each class describes one artifact: the container image (Dockerfile), the compose
stack, the Kubernetes manifests, the systemd unit and the example config. They are
read as text and parsed here (YAML, a small Dockerfile parser, configparser), and
handed to ``systemd-analyze`` and ``kubectl kustomize`` when those binaries exist.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
UNIT = DEPLOY / "systemd" / "kpi-watch.service"
CONFIG_EXAMPLE = DEPLOY / "config.example.yaml"
GUIDE = ROOT / "docs" / "production.md"

CONTAINER_PORT = 8080
CONFIG_PATH = "/etc/kpi-watch/config.yaml"  # the config file's place on every target
STATE_DIR = "/var/lib/kpi-watch"  # drop folder (and SQLite file) on every target
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def yaml_document(path: Path) -> Any:
    (doc,) = yaml_documents(path)
    return doc


def env_refs(value: Any) -> set[str]:
    """``${NAME}`` references in every string of a parsed YAML value."""
    if isinstance(value, str):
        return set(ENV_REF.findall(value))
    if isinstance(value, dict):
        return set().union(*(env_refs(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(env_refs(v) for v in value))
    return set()


def config_secrets() -> set[str]:
    """The environment variables the example config refers to."""
    return env_refs(yaml_document(CONFIG_EXAMPLE))


# --- a small Dockerfile parser --------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: str  # the rest of the logical line, continuations joined
    line: int  # where it starts (1-based)

    def exec_form(self) -> list[str] | None:
        """``["a", "b"]`` arguments as a list; None for the shell form."""
        text = self.args.strip()
        if not text.startswith("["):
            return None
        value = json.loads(text)
        assert isinstance(value, list), f"line {self.line}: JSON form must be an array"
        return [str(item) for item in value]

    def flags_and_rest(self) -> tuple[dict[str, str], str]:
        """Leading ``--name=value`` flags (as on COPY, HEALTHCHECK) and the remainder."""
        flags: dict[str, str] = {}
        rest = self.args.strip()
        while match := re.match(r"--([a-z-]+)(?:=(\S*))?\s+", rest):
            flags[match.group(1)] = match.group(2) or ""
            rest = rest[match.end():]
        return flags, rest


@dataclass
class Stage:
    base: str
    name: str | None
    line: int
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def resolve(self, text: str) -> str:
        """Substitute ``${NAME}``/``$NAME`` from the global ARG defaults."""
        return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
                      lambda m: self.global_args.get(m.group(1), m.group(0)), text)


def logical_lines(text: str) -> list[tuple[int, str]]:
    """Join ``\\`` continuations, drop comments and blank lines (as BuildKit does)."""
    lines: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comments (and parser directives) vanish, even inside continuations
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        lines.append((start, " ".join(part for part in pending if part)))
        pending = []
    assert not pending, "the Dockerfile ends inside a line continuation"
    return lines


def parse_dockerfile(text: str) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip(), number)
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            words = [w for w in words if not w.startswith("--")]  # --platform=...
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            assert len(words) in (1, 3), f"line {number}: FROM image [AS name]"
            stages.append(Stage(words[0], name, number))
        elif not stages:
            assert instruction.keyword == "ARG", f"line {number}: only ARG may precede FROM"
            arg_name, _, default = instruction.args.partition("=")
            global_args[arg_name.strip()] = default.strip()
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(global_args, stages)


class TestDockerfileParser:
    """The parser the Dockerfile checks rely on."""

    def test_stages_continuations_comments_and_global_args(self) -> None:
        parsed = parse_dockerfile(
            "# syntax=docker/dockerfile:1\nARG BASE=python:3.11-slim\n"
            "FROM ${BASE} AS build\nRUN a \\\n  # a comment inside\n  && b\n"
            "FROM ${BASE}\nUSER 10001\n")
        assert [s.name for s in parsed.stages] == ["build", None]
        assert parsed.resolve(parsed.final.base) == "python:3.11-slim"
        assert parsed.stage("build").all("RUN")[0].args == "a && b"
        assert parsed.final.all("USER")[0].args == "10001"


# --- the artifacts --------------------------------------------------------------------


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    services: dict[str, Any] = yaml_document(COMPOSE)["services"]
    return services


@pytest.fixture(scope="module")
def unit() -> configparser.ConfigParser:
    """The unit as systemd reads it: repeated keys allowed, key case kept."""
    parser = configparser.ConfigParser(strict=False, interpolation=None,
                                       comment_prefixes=("#", ";"))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    parser.read_string(UNIT.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    config: dict[str, Any] = yaml_document(CONFIG_EXAMPLE)
    return config


class TestYamlFiles:
    """Every YAML file of the kit parses."""

    @pytest.mark.parametrize(
        "path", sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")]),
        ids=lambda p: str(p.relative_to(DEPLOY)))
    def test_parses(self, path: Path) -> None:
        assert yaml_documents(path), f"{path} holds no YAML document"

    def test_the_kit_is_complete(self) -> None:
        for path in (DOCKERFILE, COMPOSE, UNIT, CONFIG_EXAMPLE, GUIDE):
            assert path.is_file(), f"missing {path.relative_to(ROOT)}"


class TestDockerfile:
    """A builder stage compiles durable-rules into a venv; a slim runtime stage runs it."""

    def test_has_a_builder_and_a_runtime_stage_on_python_3_11_slim(
            self, dockerfile: Dockerfile) -> None:
        assert len(dockerfile.stages) >= 2
        for stage in dockerfile.stages:
            base = dockerfile.resolve(stage.base)
            assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base), (
                f"line {stage.line}: durable-rules needs Python < 3.13; "
                f"base {base!r} should be python:3.11-slim")
        # The venv is copied across stages: its interpreter path must exist in both.
        assert len({dockerfile.resolve(s.base) for s in dockerfile.stages}) == 1

    def test_builder_has_a_compiler_and_installs_the_wheel_with_the_constraints(
            self, dockerfile: Dockerfile) -> None:
        builder = dockerfile.stage("builder")
        runs = " ".join(i.args for i in builder.all("RUN"))
        assert "build-essential" in runs
        assert re.search(r"pip wheel --no-deps -w (\S+) \.(\s|$)", runs)
        assert re.search(r"pip install -c constraints\.txt /wheels/kpi_watch-\*\.whl", runs)
        assert "pip install -e" not in runs and "-e ." not in runs  # installed, not linked
        # the build checks the installed package finds its templates
        assert "defaults.templates()" in runs

    def test_the_builder_copies_what_the_package_data_links_to(
            self, dockerfile: Dockerfile) -> None:
        copied = {shlex.split(c.flags_and_rest()[1])[0].rstrip("/")
                  for c in dockerfile.stage("builder").all("COPY")}
        links = [p for p in (ROOT / "watcher" / "defaults").iterdir() if p.is_symlink()]
        assert links, "watcher/defaults/ links to the editable copies"
        for link in links:
            top = (link.parent / link.readlink()).resolve().relative_to(ROOT).parts[0]
            assert top in copied, f"{link.name} -> {top}/ is not in the build"

    def test_the_runtime_copies_nothing_from_the_repository(
            self, dockerfile: Dockerfile) -> None:
        for copy in dockerfile.final.all("COPY"):
            flags, rest = copy.flags_and_rest()
            assert flags.get("from") == "builder", f"line {copy.line}: {rest}"
            assert shlex.split(rest) == ["/opt/venv", "/opt/venv"], f"line {copy.line}"

    def test_the_image_config_keeps_the_database_in_the_state_folder(
            self, dockerfile: Dockerfile) -> None:
        (written,) = [i.args for i in dockerfile.final.all("RUN") if "config.yaml" in i.args]
        lines = dict(line.split(": ", 1) for line in re.findall(r"'([a-z_]+: [^']+)'", written))
        assert lines["database_url"] == f"sqlite:///{STATE_DIR}/watcher.db"
        assert lines["drop_folder"].startswith(STATE_DIR + "/")
        assert not {"rules", "templates", "mappings"} & set(lines), "the packaged ones"

    def test_runtime_gets_the_venv_from_the_builder_and_no_compiler(
            self, dockerfile: Dockerfile) -> None:
        copies = [i.flags_and_rest() for i in dockerfile.final.all("COPY")]
        assert any(flags.get("from") == "builder" for flags, _ in copies)
        runs = " ".join(i.args for i in dockerfile.final.all("RUN"))
        assert "build-essential" not in runs and "gcc" not in runs

    def test_final_stage_runs_as_a_non_root_user(self, dockerfile: Dockerfile) -> None:
        users = dockerfile.final.all("USER")
        assert users, "the runtime stage must switch to an unprivileged USER"
        user = users[-1].args.split(":")[0]
        assert user not in ("root", "0")
        assert user.isdigit(), "a numeric uid lets Kubernetes verify runAsNonRoot"

    def test_exposes_the_container_port(self, dockerfile: Dockerfile) -> None:
        exposed = {p.split("/")[0] for i in dockerfile.final.all("EXPOSE") for p in i.args.split()}
        assert exposed == {str(CONTAINER_PORT)}

    def test_healthcheck_probes_healthz_on_the_exposed_port(self, dockerfile: Dockerfile) -> None:
        (check,) = dockerfile.final.all("HEALTHCHECK")
        _, command = check.flags_and_rest()
        assert command.startswith("CMD ")
        assert f"127.0.0.1:{CONTAINER_PORT}/healthz" in command

    def test_default_command_runs_the_daemon_on_all_interfaces(
            self, dockerfile: Dockerfile) -> None:
        command = dockerfile.final.all("CMD")[-1].exec_form()
        assert command is not None, "exec form, so SIGTERM reaches the daemon, not a shell"
        assert command[:2] == ["watcher", "run"]
        assert command[command.index("--host") + 1] == "0.0.0.0"
        assert command[command.index("--port") + 1] == str(CONTAINER_PORT)

    def test_copied_sources_exist_in_the_build_context(self, dockerfile: Dockerfile) -> None:
        # docker build -f deploy/Dockerfile <repository root>
        for stage in dockerfile.stages:
            for copy in stage.all("COPY"):
                flags, rest = copy.flags_and_rest()
                if "from" in flags:
                    continue
                *sources, _ = shlex.split(rest)
                for source in sources:
                    assert (ROOT / source).exists(), f"line {copy.line}: no {source} in context"

    def test_the_dockerignore_keeps_what_the_build_copies(self, dockerfile: Dockerfile) -> None:
        ignore = DOCKERFILE.with_name("Dockerfile.dockerignore").read_text(encoding="utf-8")
        kept = {line[1:].rstrip("/") for line in ignore.splitlines() if line.startswith("!")}
        for stage in dockerfile.stages:
            for copy in stage.all("COPY"):
                flags, rest = copy.flags_and_rest()
                if "from" not in flags:
                    assert set(shlex.split(rest)[:-1]) <= kept, f"line {copy.line}"


class TestComposeFile:
    """PostgreSQL 16, then a one-shot migration, then the daemon."""

    def test_the_watcher_images_build_from_the_dockerfile(self, services: dict[str, Any]) -> None:
        for name in ("migrate", "watcher"):
            build = services[name]["build"]
            context = (COMPOSE.parent / build["context"]).resolve()
            assert context == ROOT
            assert (context / build["dockerfile"]).resolve() == DOCKERFILE.resolve()

    def test_postgres_16_has_a_healthcheck_and_a_volume(self, services: dict[str, Any]) -> None:
        postgres = services["postgres"]
        assert postgres["image"] == "postgres:16"
        assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
        assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])
        assert postgres["volumes"][0].split(":")[0] in yaml_document(COMPOSE)["volumes"]

    def test_migrate_runs_once_when_postgres_is_healthy(self, services: dict[str, Any]) -> None:
        migrate = services["migrate"]
        assert migrate["command"] == ["watcher", "db", "upgrade"]
        assert migrate["restart"] == "no"
        assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"

    def test_the_daemon_starts_after_a_successful_migration(
            self, services: dict[str, Any]) -> None:
        watcher = services["watcher"]
        assert watcher["command"][:2] == ["watcher", "run"]
        assert watcher["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert any(p.endswith(f":{CONTAINER_PORT}") for p in watcher["ports"])

    def test_the_config_is_mounted_read_only(self, services: dict[str, Any]) -> None:
        for name in ("migrate", "watcher"):
            service = services[name]
            assert service["environment"]["WATCHER_CONFIG"] == CONFIG_PATH
            mounts = [v.split(":") for v in service["volumes"]]
            (source,) = [m[0] for m in mounts if m[1] == CONFIG_PATH and m[2:] == ["ro"]]
            assert (COMPOSE.parent / source).is_file()

    def test_the_database_url_and_secrets_come_from_variables(
            self, services: dict[str, Any]) -> None:
        environment = services["watcher"]["environment"]
        assert environment["WATCHER_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "${POSTGRES_PASSWORD" in environment["WATCHER_DATABASE_URL"]
        assert "${POSTGRES_PASSWORD" in services["postgres"]["environment"]["POSTGRES_PASSWORD"]
        for name in config_secrets():
            assert environment[name].startswith(f"${{{name}"), f"{name} passed through"


class TestKubernetesManifests:
    """Namespace-agnostic manifests listed by one kustomization."""

    EXPECTED: ClassVar[dict[str, tuple[str, str]]] = {
        "deployment.yaml": ("Deployment", "apps/v1"),
        "service.yaml": ("Service", "v1"),
        "configmap.yaml": ("ConfigMap", "v1"),
        "secret.yaml": ("Secret", "v1"),
        "migration-job.yaml": ("Job", "batch/v1"),
    }

    @staticmethod
    def manifest(name: str) -> dict[str, Any]:
        document: dict[str, Any] = yaml_document(K8S / name)
        return document

    @staticmethod
    def container(manifest: dict[str, Any]) -> dict[str, Any]:
        (container,) = manifest["spec"]["template"]["spec"]["containers"]
        return dict(container)

    def test_the_kustomization_lists_every_manifest(self) -> None:
        kustomization = self.manifest("kustomization.yaml")
        assert kustomization["kind"] == "Kustomization"
        assert sorted(kustomization["resources"]) == sorted(self.EXPECTED)
        assert "namespace" not in kustomization

    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_each_manifest_has_its_kind_api_version_and_name(self, name: str) -> None:
        manifest = self.manifest(name)
        assert (manifest["kind"], manifest["apiVersion"]) == self.EXPECTED[name]
        assert manifest["metadata"]["name"].startswith("kpi-watch")
        assert "namespace" not in manifest["metadata"], "namespace-agnostic"

    def test_the_deployment_probes_healthz_and_readyz_on_the_container_port(self) -> None:
        container = self.container(self.manifest("deployment.yaml"))
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert set(ports.values()) == {CONTAINER_PORT}

        def probe(kind: str) -> tuple[str, int]:
            get = container[kind]["httpGet"]
            port = get["port"]
            return get["path"], ports[port] if isinstance(port, str) else port

        assert probe("livenessProbe") == ("/healthz", CONTAINER_PORT)
        assert probe("readinessProbe") == ("/readyz", CONTAINER_PORT)

    def test_the_deployment_runs_the_daemon_with_resources_and_the_config(self) -> None:
        deployment = self.manifest("deployment.yaml")
        container = self.container(deployment)
        assert container["command"][:2] == ["watcher", "run"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert "memory" in container["resources"]["limits"]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        assert env["WATCHER_CONFIG"] == CONFIG_PATH
        assert terminated_gracefully(deployment)

    @pytest.mark.parametrize("name", ["deployment.yaml", "migration-job.yaml"])
    def test_pods_run_as_non_root_on_a_read_only_root(self, name: str) -> None:
        manifest = self.manifest(name)
        pod = manifest["spec"]["template"]["spec"]
        container = self.container(manifest)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        # A read-only root needs the config mounted and /tmp writable.
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert CONFIG_PATH.rsplit("/", 1)[0] in mounts and "/tmp" in mounts
        if name == "deployment.yaml":
            assert STATE_DIR in mounts, "the drop folder lives under the state directory"

    @pytest.mark.parametrize("name", ["deployment.yaml", "migration-job.yaml"])
    def test_pods_get_the_config_map_and_the_secret(self, name: str) -> None:
        manifest = self.manifest(name)
        pod = manifest["spec"]["template"]["spec"]
        container = self.container(manifest)
        config_maps = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
        assert config_maps == {self.manifest("configmap.yaml")["metadata"]["name"]}
        secrets = {e["secretRef"]["name"] for e in container["envFrom"] if "secretRef" in e}
        assert secrets == {self.manifest("secret.yaml")["metadata"]["name"]}

    def test_the_migration_job_runs_watcher_db_upgrade(self) -> None:
        job = self.manifest("migration-job.yaml")
        container = self.container(job)
        assert [*container.get("command", []), *container.get("args", [])] == [
            "watcher", "db", "upgrade"]
        assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
        assert job["spec"]["backoffLimit"] >= 1
        assert container["image"] == self.container(self.manifest("deployment.yaml"))["image"]

    def test_the_service_reaches_the_daemon(self) -> None:
        service = self.manifest("service.yaml")
        deployment = self.manifest("deployment.yaml")
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        container_ports = {p["name"]: p["containerPort"]
                           for p in self.container(deployment)["ports"]}
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert container_ports.get(target, target) == CONTAINER_PORT

    def test_the_config_map_holds_the_example_config(self) -> None:
        config_map = self.manifest("configmap.yaml")
        assert set(config_map["data"]) == {CONFIG_PATH.rsplit("/", 1)[1]}
        (text,) = config_map["data"].values()
        assert yaml.safe_load(text) == yaml_document(CONFIG_EXAMPLE), (
            "keep k8s/configmap.yaml in step with config.example.yaml")

    def test_the_secret_is_an_example_with_placeholders_for_every_reference(self) -> None:
        secret = self.manifest("secret.yaml")
        assert "data" not in secret, "stringData placeholders, nothing base64-encoded"
        values = secret["stringData"]
        assert all("CHANGE-ME" in value for value in values.values())
        needed = config_secrets() | {"WATCHER_DATABASE_URL"}
        assert needed <= set(values)
        assert values["WATCHER_DATABASE_URL"].startswith("postgresql+psycopg://")

    def test_kustomize_renders_all_five_kinds(self) -> None:
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            pytest.skip("kubectl is not installed: `kubectl kustomize` render not checked")
        result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True,
                                text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stderr
        kinds = sorted(d["kind"] for d in yaml.safe_load_all(result.stdout) if d)
        assert kinds == sorted(kind for kind, _ in self.EXPECTED.values())


def terminated_gracefully(deployment: dict[str, Any]) -> bool:
    """Enough grace after SIGTERM for in-flight work (the daemon exits 0 when done)."""
    return int(deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]) >= 30


class TestSystemdUnit:
    """A hardened unit: migrations before start, `watcher run` in the foreground."""

    def test_has_unit_service_and_install_sections(self, unit: configparser.ConfigParser) -> None:
        assert {"Unit", "Service", "Install"} <= set(unit.sections())
        assert unit["Install"]["WantedBy"] == "multi-user.target"

    def test_exec_start_runs_watcher_run(self, unit: configparser.ConfigParser) -> None:
        command = shlex.split(unit["Service"]["ExecStart"])
        assert Path(command[0]).name == "watcher" and Path(command[0]).is_absolute()
        assert command[1:2] == ["run"]

    def test_migrations_run_before_every_start(self, unit: configparser.ConfigParser) -> None:
        command = shlex.split(unit["Service"]["ExecStartPre"])
        assert Path(command[0]).name == "watcher" and command[1:] == ["db", "upgrade"]

    def test_environment_comes_from_the_root_only_env_file(
            self, unit: configparser.ConfigParser) -> None:
        service = unit["Service"]
        assert service["EnvironmentFile"] == "/etc/kpi-watch/env"
        assert service["Environment"] == f"WATCHER_CONFIG={CONFIG_PATH}"

    def test_stops_with_sigterm_and_restarts_on_failure(
            self, unit: configparser.ConfigParser) -> None:
        service = unit["Service"]
        assert service["KillSignal"] == "SIGTERM"
        assert service["Restart"] == "on-failure"
        assert int(service["TimeoutStopSec"].rstrip("s")) >= 30

    def test_is_hardened(self, unit: configparser.ConfigParser) -> None:
        service = unit["Service"]
        assert service.get("DynamicUser") == "yes" or service.get("User") not in (None, "root")
        assert service["ProtectSystem"] == "strict"
        assert service["StateDirectory"] == Path(STATE_DIR).name
        assert service["WorkingDirectory"] == STATE_DIR
        for key in ("NoNewPrivileges", "PrivateTmp", "ProtectHome", "PrivateDevices"):
            assert service[key] == "yes", key
        assert service["CapabilityBoundingSet"] == ""

    def test_systemd_analyze_verify_accepts_it(self, tmp_path: Path) -> None:
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            pytest.skip("systemd-analyze is not installed: unit not verified by systemd")
        # verify also checks that ExecStart* binaries exist; the /opt/kpi-watch install
        # is not on a build machine, so point them at an executable that is.
        unit = tmp_path / UNIT.name
        unit.write_text(UNIT.read_text(encoding="utf-8").replace(
            "/opt/kpi-watch/venv/bin/watcher", shutil.which("true") or "/bin/true"))
        result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                                timeout=120, check=False)
        complaints = [line for line in (result.stdout + result.stderr).splitlines()
                      if UNIT.name in line or str(unit) in line]
        assert result.returncode == 0 and not complaints, result.stdout + result.stderr

    def test_systemd_analyze_security_rates_it_ok(self, tmp_path: Path) -> None:
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            pytest.skip("systemd-analyze is not installed: exposure level not rated")
        result = subprocess.run([analyze, "security", "--offline=yes", str(UNIT)],
                                capture_output=True, text=True, timeout=120, check=False)
        match = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
        if match is None:
            pytest.skip(f"this systemd-analyze cannot rate a unit file offline: "
                        f"{result.stderr.strip()[:200]}")
        assert float(match.group(1)) <= 3.0, result.stdout


# --- the example config ---------------------------------------------------------------

PLAIN_SCHEMES = {"http", "https", "json", "jsons", "xml", "xmls", "form", "forms",
                 "mailto", "mailtos"}
SECRET_QUERY_KEY = re.compile(
    r"(?i)^\+?-?(key|token|secret|password|pass|pwd|access_token|webhook|sign|auth)")
SENTINEL = "ENVREF"
# Well-formed stand-ins for the secrets the example config refers to.
SAMPLE_SECRETS = {
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T00000000/B00000000/"
                         "XXXXXXXXXXXXXXXXXXXXXXXX",
    "WECOM_KEY": "0123abcd-0000-1111-2222-333344445555",
    "SMTP_PASSWORD": "sample-smtp-password",
}


def literal_secrets(url: str) -> list[str]:
    """Parts of an apprise URL that carry a secret not written as a ``${ENV}`` reference.

    Secrets sit in the password, secret-looking query values, and (for token-bearing
    schemes such as ``slack://`` or ``wecombot://``) the host and path.
    """
    if ENV_REF.fullmatch(url.strip()):
        return []  # the whole URL is a secret from the environment
    text = ENV_REF.sub(SENTINEL, url)
    parts = urlsplit(text)
    found: list[str] = []
    if parts.password and parts.password != SENTINEL:
        found.append("password")
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if SECRET_QUERY_KEY.match(key) and value != SENTINEL:
            found.append(f"query {key}")
    if parts.scheme.lower() not in PLAIN_SCHEMES and SENTINEL not in parts.netloc + parts.path:
        found.append(f"token in a {parts.scheme}:// URL")
    return found


class TestConfigExample:
    """A production config whose secrets all come from the environment."""

    @staticmethod
    def urls(config: dict[str, Any]) -> list[tuple[str, str]]:
        return [(name, url) for name, channel in config["channels"].items()
                for url in channel["urls"]]

    @pytest.mark.parametrize(("url", "expected"), [
        ("mailtos://u:hunter22@example.com?to=a@example.com", ["password"]),
        ("json://hooks.example.com/x?token=abc123", ["query token"]),
        ("slack://T000/B000/XXXX", ["token in a slack:// URL"]),
        ("mailtos://u:${SMTP_PASSWORD}@example.com", []),
        ("${SLACK_WEBHOOK_URL}", []),
    ])
    def test_the_literal_secret_check_itself(self, url: str, expected: list[str]) -> None:
        assert literal_secrets(url) == expected

    def test_declares_the_compliance_hook_and_managers_mail_channels(
            self, config: dict[str, Any]) -> None:
        (hook,) = config["channels"]["compliance-hook"]["urls"]
        (mail,) = config["channels"]["managers-mail"]["urls"]
        assert hook.startswith(("json://", "jsons://"))
        assert mail.startswith("mailtos://") and "${SMTP_PASSWORD}" in mail

    def test_channel_urls_hold_no_literal_secrets(self, config: dict[str, Any]) -> None:
        leaks = {f"{name}: {url}": found for name, url in self.urls(config)
                 if (found := literal_secrets(url))}
        assert not leaks, f"use ${{ENV}} references instead: {leaks}"

    def test_no_database_password_in_the_file(self, config: dict[str, Any]) -> None:
        assert "database_url" not in config, "WATCHER_DATABASE_URL comes from the environment"

    def test_routes_send_compliance_and_manager_alerts(self, config: dict[str, Any]) -> None:
        audiences = {a for r in config["routes"] for a in [r["match"].get("audience")]}
        assert {"compliance", "manager"} <= audiences
        for route in config["routes"]:
            assert set(route["channels"]) <= set(config["channels"])

    def test_paths_match_the_deployment_layout(self, config: dict[str, Any]) -> None:
        assert config["drop_folder"].startswith(STATE_DIR + "/")
        dockerfile = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
        destinations = {shlex.split(c.flags_and_rest()[1])[-1]
                        for c in dockerfile.final.all("COPY")}
        assert "rules" not in config and "templates" not in config, (
            "the image has no rule pack of its own: the package's is used")
        assert destinations == {"/opt/venv"}
        assert config["port"] == CONTAINER_PORT

    def test_the_daemon_accepts_it(self) -> None:
        from watcher.config import load_settings

        env = {name: SAMPLE_SECRETS.get(name, "sample-secret") for name in config_secrets()}
        settings = load_settings(CONFIG_EXAMPLE, env=env)
        assert {"compliance-hook", "managers-mail"} <= set(settings.channels)

    def test_apprise_understands_every_url_once_secrets_are_filled(
            self, config: dict[str, Any]) -> None:
        apprise = pytest.importorskip("apprise")
        for name, url in self.urls(config):
            filled = ENV_REF.sub(lambda m: SAMPLE_SECRETS.get(m.group(1), "sample-secret"), url)
            assert apprise.Apprise().add(filled), f"{name}: apprise rejects {url}"


class TestProductionGuide:
    """docs/production.md covers what an operator needs."""

    @pytest.mark.parametrize("topic", [
        "postgresql+psycopg://", "CREATE DATABASE", "watcher db upgrade",
        "watcher tokens create", "watcher tokens list", "watcher tokens revoke",
        "pg_dump", ".backup", "/metrics", "/healthz", "/readyz", "scale model",
        "deploy/k8s", "deploy/systemd/kpi-watch.service", "docker-compose.yml",
    ])
    def test_mentions(self, topic: str) -> None:
        assert topic in GUIDE.read_text(encoding="utf-8")
