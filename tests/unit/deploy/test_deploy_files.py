"""The deployment files in deploy/ (and /.dockerignore), checked without Docker, Helm or a network.

What is checked: the YAML parses; every ``NODEDROP_*`` name the files mention is one the code
reads; every ``nodedrop`` command they run is a real subcommand; the compose graph (depends_on,
the NATS routes, nginx in front of both api replicas with WebSocket upgrades, the URLs naming
services that exist); the Dockerfile's stages, paths and user; and the Helm chart, rendered by
tests/unit/deploy/helm_render.py with its values.yaml. None of this runs the files on a Docker
engine or a Kubernetes cluster (docs/operations.md, "Deploying on several machines").
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml  # type: ignore[import-untyped]  # no types-PyYAML in the environment

from .helm_render import Chart, TemplateError

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_EXAMPLE = DEPLOY / ".env.example"
NATS_CONF = DEPLOY / "nats" / "nats-cluster.conf"
NGINX_CONF = DEPLOY / "nginx" / "nodedrop.conf"
CHART_DIR = DEPLOY / "kubernetes" / "nodedrop"

#: Variables being added to the code while these files were written (partitioned log, stream
#: replicas, several notifiers, NATS authentication and TLS). They are allowed before they appear
#: in the sources; every other NODEDROP_* name must be found there, so a misspelt one fails.
#: Drop a name from here once the code reads it.
EXPECTED_VARIABLES = frozenset(
    {
        "NODEDROP_PARTITIONS",  # partitions of the event log (nodedrop.contracts.routing)
        "NODEDROP_STREAM_REPLICAS",  # copies of each stream in a NATS cluster
        "NODEDROP_NOTIFIER_URL",  # the notifiers' WebSocket base URLs, comma-separated
        "NODEDROP_NATS_TOKEN",  # NATS authentication: a token,
        "NODEDROP_NATS_CREDS",  # a credentials file,
        "NODEDROP_NATS_NKEY",  # or an NKey seed
        "NODEDROP_NATS_TLS_CA",  # NATS over TLS: the CA,
        "NODEDROP_NATS_TLS_CERT",  # the client certificate
        "NODEDROP_NATS_TLS_KEY",  # and its key
    }
)

#: A variable name as the deploy files mention it (ends in a letter or digit).
_VARIABLE = re.compile(r"\bNODEDROP_[A-Z0-9_]*[A-Z0-9]\b")
NATS_NODES = ("nats-1", "nats-2", "nats-3")
API_REPLICAS = ("api-1", "api-2")
NOTIFIERS = ("notifier-1", "notifier-2")
NODEDROP_IMAGE = "${DEPLOY_IMAGE:-nodedrop:latest}"


# ---------------------------------------------------------------- helpers


def _map(value: object, what: str) -> dict[str, object]:
    assert isinstance(value, dict), f"{what}: expected a mapping, got {value!r}"
    return value


def _list(value: object, what: str) -> list[object]:
    assert isinstance(value, list), f"{what}: expected a list, got {value!r}"
    return value


def _str(value: object, what: str) -> str:
    assert isinstance(value, str), f"{what}: expected a string, got {value!r}"
    return value


def _load_yaml(path: Path) -> object:
    return yaml.safe_load(path.read_text())


@functools.cache
def _python_sources() -> str:
    """Every Python source of the five distributions, as the code stands now."""
    roots = [REPO / "libs", REPO / "services", REPO / "src"]
    return "\n".join(
        path.read_text(errors="replace") for root in roots for path in sorted(root.rglob("*.py"))
    )


def unknown_variables(names: Iterable[str]) -> list[str]:
    """The names no service's settings read, no Python source mentions (as a whole word) and
    the allow-list lacks."""
    from nodedrop.cli.settings_table import variables

    sources = _python_sources()
    read = variables()
    return sorted(
        {
            name
            for name in names
            if name not in EXPECTED_VARIABLES
            and name not in read
            and re.search(rf"\b{re.escape(name)}\b", sources) is None
        }
    )


@functools.cache
def subcommands() -> frozenset[str]:
    from nodedrop.cli.main import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return frozenset(action.choices)
    raise AssertionError("the nodedrop parser has no subcommands")


def _compose() -> dict[str, object]:
    return _map(_load_yaml(COMPOSE), "compose.yaml")


def _services() -> dict[str, dict[str, object]]:
    services = _map(_compose()["services"], "services")
    return {name: _map(service, name) for name, service in services.items()}


def _environment(service: dict[str, object]) -> dict[str, str]:
    env = service.get("environment") or {}
    return {key: str(value) for key, value in _map(env, "environment").items()}


def _nodedrop_services() -> dict[str, dict[str, object]]:
    return {n: s for n, s in _services().items() if s.get("image") == NODEDROP_IMAGE}


def _depends_on(service: dict[str, object]) -> dict[str, str]:
    """Each dependency and its condition (the short list form means service_started)."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {_str(name, "depends_on"): "service_started" for name in raw}
    return {
        name: _str(_map(spec, name).get("condition", "service_started"), name)
        for name, spec in _map(raw, "depends_on").items()
    }


def _replicas(service: dict[str, object]) -> int:
    deploy = _map(service.get("deploy") or {}, "deploy")
    replicas = deploy.get("replicas", 1)
    assert isinstance(replicas, int)
    return replicas


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}`` (the forms used)."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, word = match["name"], match["op"], match["word"]
        if env.get(name):
            return env[name]
        if operator == ":-":
            return word
        raise AssertionError(f"{name} is not set: {word}")

    pattern = r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:-|:\?)(?P<word>[^}]*))?\}"
    substituted = re.sub(pattern, substitute, value)
    assert "$" not in substituted, f"unsupported interpolation in {value!r}"
    return substituted


def _url_list(value: str) -> list[tuple[str, str, int]]:
    parsed = [urlsplit(part.strip()) for part in value.split(",")]
    return [(url.scheme, url.hostname or "", url.port or 0) for url in parsed]


# ---------------------------------------------------------------- all files


def test_every_yaml_file_parses() -> None:
    files = [
        path
        for path in sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])
        if "templates" not in path.relative_to(DEPLOY).parts
    ]
    assert COMPOSE in files
    assert CHART_DIR / "Chart.yaml" in files
    assert CHART_DIR / "values.yaml" in files
    for path in files:
        assert isinstance(_load_yaml(path), dict), path


def _deploy_texts() -> Iterator[tuple[Path, str]]:
    """Everything in deploy/ that configures a process, comments included."""
    files = [COMPOSE, DOCKERFILE, ENV_EXAMPLE, NATS_CONF, NGINX_CONF, *CHART_DIR.rglob("*")]
    for path in files:
        if path.is_file():
            yield path, path.read_text()


def test_every_nodedrop_variable_is_read_by_the_code() -> None:
    mentioned: dict[str, set[str]] = {}
    for path, text in _deploy_texts():
        for name in _VARIABLE.findall(text):
            mentioned.setdefault(name, set()).add(str(path.relative_to(REPO)))
    assert "NODEDROP_NATS_URL" in mentioned
    assert "NODEDROP_DATABASE_URL" in mentioned
    unknown = unknown_variables(mentioned)
    assert not unknown, {name: sorted(mentioned[name]) for name in unknown}


def test_a_misspelt_variable_is_caught() -> None:
    assert unknown_variables(["NODEDROP_NATS_URL", "NODEDROP_PARTITIONS"]) == []
    assert unknown_variables(["NODEDROP_NATS_ULR", "NODEDROP_PARTITION"]) == [
        "NODEDROP_NATS_ULR",
        "NODEDROP_PARTITION",
    ]
    # A prefix of a real name is no real name.
    assert unknown_variables(["NODEDROP_NATS"]) == ["NODEDROP_NATS"]


def test_the_subcommands_are_read_from_the_cli() -> None:
    assert {"api", "scheduler", "runner", "notifier", "migrate"} <= subcommands()
    assert "deploy" not in subcommands()


# ---------------------------------------------------------------- compose


def test_compose_has_the_services() -> None:
    services = _services()
    assert set(NATS_NODES) | {"postgres", "migrate", "proxy", "scheduler", "runner"} <= set(
        services
    )
    assert set(API_REPLICAS) | set(NOTIFIERS) <= set(services)
    counts: dict[str, int] = {}
    for name, service in _nodedrop_services().items():
        command = _list(service["command"], name)
        counts[_str(command[0], name)] = counts.get(str(command[0]), 0) + _replicas(service)
    assert counts == {"migrate": 1, "api": 2, "scheduler": 2, "notifier": 2, "runner": 3}


def test_compose_commands_are_nodedrop_subcommands() -> None:
    # The image's ENTRYPOINT is `nodedrop`: a compose command is its arguments.
    assert _dockerfile_json("ENTRYPOINT") == ["nodedrop"]
    services = _nodedrop_services()
    assert len(services) == 1 + 2 + 1 + 2 + 1  # migrate, api-1/2, scheduler, notifier-1/2, runner
    for name, service in services.items():
        command = [_str(part, name) for part in _list(service.get("command"), name)]
        assert command, name
        assert command[0] in subcommands(), f"{name}: nodedrop {command[0]} does not exist"


def test_compose_depends_on_targets_exist() -> None:
    services = _services()
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        for target, condition in _depends_on(service).items():
            assert target in services, f"{name} depends on {target}, which is not a service"
            assert condition in conditions, (name, target, condition)
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"


def test_every_service_waits_for_the_migration() -> None:
    services = _nodedrop_services()
    assert _depends_on(services["migrate"]) == {"postgres": "service_healthy"}
    assert services["migrate"].get("restart") == "no"
    for name, service in services.items():
        if name == "migrate":
            continue
        depends = _depends_on(service)
        assert depends.get("migrate") == "service_completed_successfully", name
        for node in NATS_NODES:
            assert depends.get(node) == "service_healthy", (name, node)


def test_compose_environment() -> None:
    nats_urls = [("nats", node, 4222) for node in NATS_NODES]
    for name, service in _nodedrop_services().items():
        env = _environment(service)
        command = _list(service["command"], name)[0]
        if command == "migrate":
            assert set(env) == {"NODEDROP_DATABASE_URL"}
            continue
        assert _url_list(env["NODEDROP_NATS_URL"]) == nats_urls, name
        assert env["NODEDROP_STREAM_REPLICAS"] == "3", name
        assert env["NODEDROP_PARTITIONS"] == "8", name
        if command in {"api", "notifier"}:
            assert env["NODEDROP_HOST"] == "0.0.0.0", name
            assert env["NODEDROP_ADMIN_TOKEN"].startswith("${NODEDROP_ADMIN_TOKEN:?"), name
        else:
            assert "NODEDROP_ADMIN_TOKEN" not in env, name
        # The projection's readers and writers, and the runners (credentials) use PostgreSQL;
        # only the api and the runners hold the key credentials are encrypted under.
        if command in {"api", "notifier", "runner"}:
            assert env["NODEDROP_DATABASE_URL"].startswith("postgresql+asyncpg://"), name
        else:
            assert "NODEDROP_DATABASE_URL" not in env, name
        if command in {"api", "runner"}:
            assert env["NODEDROP_SECRET_KEY"].startswith("${NODEDROP_SECRET_KEY:?"), name
        else:
            assert "NODEDROP_SECRET_KEY" not in env, name


def test_compose_urls_name_services_that_listen_there() -> None:
    services = _services()
    api = _environment(services["api-1"])
    assert api == _environment(services["api-2"])
    # The notifiers' WebSocket servers listen on NODEDROP_NOTIFIER_PORT (default 8001).
    notifier_urls = _url_list(api["NODEDROP_NOTIFIER_URL"])
    assert [host for _, host, _ in notifier_urls] == list(NOTIFIERS)
    for scheme, host, port in notifier_urls:
        assert scheme == "http"
        assert _list(services[host]["command"], host) == ["notifier"]
        assert port == int(_environment(services[host]).get("NODEDROP_NOTIFIER_PORT", "8001"))
    # The database URL names the postgres service, its user and database.
    secrets = {"POSTGRES_PASSWORD": "pw0", "NODEDROP_ADMIN_TOKEN": "token"}
    database = urlsplit(interpolate(api["NODEDROP_DATABASE_URL"], secrets))
    postgres = {k: interpolate(v, secrets) for k, v in _environment(services["postgres"]).items()}
    assert database.scheme == "postgresql+asyncpg"
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"] == "pw0"
    assert database.path == "/" + postgres["POSTGRES_DB"]
    # Without the secrets, compose refuses to start (${NAME:?...}).
    with pytest.raises(AssertionError, match="POSTGRES_PASSWORD is not set"):
        interpolate(api["NODEDROP_DATABASE_URL"], {})
    assert interpolate(api["NODEDROP_ADMIN_TOKEN"], secrets) == "token"


def test_compose_variables_are_documented_in_the_env_example() -> None:
    text = COMPOSE.read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", text))
    assert required == {"NODEDROP_ADMIN_TOKEN", "NODEDROP_SECRET_KEY", "POSTGRES_PASSWORD"}
    example = ENV_EXAMPLE.read_text()
    set_there = set(re.findall(r"^([A-Z0-9_]+)=", example, re.MULTILINE))
    mentioned = set(re.findall(r"^#?([A-Z0-9_]+)=", example, re.MULTILINE))
    assert required <= set_there
    assert used <= mentioned, used - mentioned
    # Only those the code reads carry the NODEDROP_ prefix (the others are compose's own).
    assert {name for name in used if name.startswith("NODEDROP_")} == {
        "NODEDROP_ADMIN_TOKEN",
        "NODEDROP_SECRET_KEY",
    }


def test_only_the_proxy_is_reachable_from_outside() -> None:
    compose = _compose()
    networks = _map(compose["networks"], "networks")
    internal = {
        name for name, spec in networks.items() if _map(spec or {}, name).get("internal") is True
    }
    assert internal == {"backend"}
    for name, service in _services().items():
        if name != "proxy":
            assert "ports" not in service, f"{name} publishes a port"
        joined = {_str(n, name) for n in _list(service.get("networks"), name)}
        assert joined <= set(networks), name
        if name in {*NATS_NODES, "postgres"}:
            assert joined <= internal, f"{name} is on a network with a way out"


# ---------------------------------------------------------------- NATS


def _nats_conf() -> str:
    return NATS_CONF.read_text()


def test_nats_nodes_run_the_cluster_config_on_a_volume() -> None:
    services = _services()
    volumes = set(_map(_compose()["volumes"], "volumes"))
    names = set()
    for node in NATS_NODES:
        service = services[node]
        image = _str(service["image"], node)
        match = re.fullmatch(r"nats:(\d+)\.(\d+)(?:\.\d+)?(?:-alpine)?", image)
        assert match is not None, image
        assert (int(match[1]), int(match[2])) >= (2, 11), image
        mounts = [_str(m, node).split(":") for m in _list(service["volumes"], node)]
        command = [_str(part, node) for part in _list(service["command"], node)]
        config_path = command[command.index("--config") + 1]
        assert ["./nats/nats-cluster.conf", config_path, "ro"] in mounts
        assert (COMPOSE.parent / "nats" / "nats-cluster.conf").is_file()
        data = [source for source, target, *_ in mounts if target == "/data"]
        assert len(data) == 1, (node, mounts)
        assert data[0] in volumes, (node, mounts)
        names.add(_environment(service)["NATS_SERVER_NAME"])
    assert names == set(NATS_NODES)
    conf = _nats_conf()
    assert re.search(r"^server_name:\s*\$NATS_SERVER_NAME\s*$", conf, re.MULTILINE)
    assert re.search(r"^\s*store_dir:\s*/data\s*$", conf, re.MULTILINE)
    assert re.search(r"^\s*sync_interval:\s*always\s*$", conf, re.MULTILINE)
    assert re.search(r"^port:\s*4222\s*$", conf, re.MULTILINE)


def test_nats_nodes_name_each_other_as_routes() -> None:
    conf = _nats_conf()
    cluster = re.search(r"^cluster\s*\{(.*?)^\}", conf, re.MULTILINE | re.DOTALL)
    assert cluster is not None
    port = re.search(r"^\s*port:\s*(\d+)\s*$", cluster[1], re.MULTILINE)
    routes_block = re.search(r"routes:\s*\[(.*?)\]", cluster[1], re.DOTALL)
    assert port is not None
    assert routes_block is not None
    routes = [urlsplit(r) for r in re.findall(r"nats-route://\S+", routes_block[1])]
    assert sorted((r.hostname, r.port) for r in routes) == [
        (node, int(port[1])) for node in NATS_NODES
    ]
    services = _services()
    assert all(node in services for node in NATS_NODES)


def _nats_server() -> Path | None:
    candidate = Path(sys.executable).parent / "nats-server"
    return candidate if candidate.is_file() and os.access(candidate, os.X_OK) else None


@pytest.mark.skipif(_nats_server() is None, reason="no nats-server next to the interpreter")
def test_nats_server_accepts_the_cluster_config(tmp_path: Path) -> None:
    """``nats-server -t``: parse and check the configuration, start nothing."""
    server = _nats_server()
    assert server is not None
    for node in NATS_NODES:
        env = {"PATH": os.environ.get("PATH", ""), "NATS_SERVER_NAME": node}
        result = subprocess.run(
            [str(server), "-t", "-c", str(NATS_CONF)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "is valid" in result.stdout + result.stderr


# ---------------------------------------------------------------- nginx


@dataclass
class NginxDirective:
    args: list[str]
    block: list[NginxDirective] | None


def _nginx_tokens(text: str) -> Iterator[str]:
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
        elif char == "#":
            end = text.find("\n", pos)
            pos = len(text) if end < 0 else end
        elif char in "{};":
            yield char
            pos += 1
        elif char in "'\"":
            end = text.index(char, pos + 1)
            yield text[pos + 1 : end]
            pos = end + 1
        else:
            match = re.compile(r"[^\s{};#'\"]+").match(text, pos)
            assert match is not None
            yield match[0]
            pos = match.end()


def parse_nginx(text: str) -> list[NginxDirective]:
    stack: list[list[NginxDirective]] = [[]]
    args: list[str] = []
    for token in _nginx_tokens(text):
        if token == ";":
            stack[-1].append(NginxDirective(args, None))
            args = []
        elif token == "{":
            block: list[NginxDirective] = []
            stack[-1].append(NginxDirective(args, block))
            stack.append(block)
            args = []
        elif token == "}":
            assert not args, f"unterminated directive {args}"
            stack.pop()
        else:
            args.append(token)
    assert len(stack) == 1, "unbalanced braces"
    assert not args, f"unterminated directive {args}"
    return stack[0]


def _find(directives: list[NginxDirective], *args: str) -> list[NginxDirective]:
    return [d for d in directives if d.args[: len(args)] == list(args)]


def _one_block(directives: list[NginxDirective], *args: str) -> list[NginxDirective]:
    found = _find(directives, *args)
    assert len(found) == 1, (args, found)
    block = found[0].block
    assert block is not None, (args, found)
    return block


def test_proxy_spreads_over_both_api_replicas() -> None:
    services = _services()
    proxy = services["proxy"]
    assert _str(proxy["image"], "proxy").startswith("nginx:")
    mounts = [_str(m, "proxy").split(":") for m in _list(proxy["volumes"], "proxy")]
    assert ["./nginx/nodedrop.conf", "/etc/nginx/conf.d/default.conf", "ro"] in mounts
    assert _depends_on(proxy) == dict.fromkeys(API_REPLICAS, "service_healthy")
    conf = parse_nginx(NGINX_CONF.read_text())
    upstream = _one_block(conf, "upstream", "nodedrop_api")
    servers = {d.args[1] for d in _find(upstream, "server")}
    api_port = 8000  # NODEDROP_PORT's default; the compose file does not change it
    assert servers == {f"{name}:{api_port}" for name in API_REPLICAS}
    for name in API_REPLICAS:
        assert _list(services[name]["command"], name) == ["api"]
        assert "NODEDROP_PORT" not in _environment(services[name])
    server = _one_block(conf, "server")
    listen = _find(server, "listen")[0].args[1]
    published = _str(_list(proxy["ports"], "ports")[0], "ports")
    assert published.endswith(f":{listen}")
    locations = {tuple(d.args[1:]): d.block for d in _find(server, "location")}
    # The operator's endpoints are answered 404 by nginx: scraped and probed inside only.
    operator = {("=", path) for path in ("/metrics", "/readyz", "/livez")}
    assert set(locations) == {("/",), ("/ws/",), *operator}
    for where in operator:
        assert [d.args for d in locations.pop(where) or []] == [["return", "404"]]
    for block in locations.values():
        assert block is not None
        # nginx: a location with any proxy_set_header inherits none from the server level.
        headers = {
            d.args[1] for d in _find(block, "proxy_set_header") or _find(server, "proxy_set_header")
        }
        assert {"Host", "X-Forwarded-For", "X-Forwarded-Proto"} <= headers
        assert [d.args for d in _find(block, "proxy_pass")] == [
            ["proxy_pass", "http://nodedrop_api"]
        ]


def test_proxy_upgrades_websockets() -> None:
    conf = parse_nginx(NGINX_CONF.read_text())
    server = _one_block(conf, "server")
    ws = _one_block(server, "location", "/ws/")
    # proxy_http_version is inherited from the server level unless the location sets it.
    version = _find(ws, "proxy_http_version") or _find(server, "proxy_http_version")
    assert version[0].args == ["proxy_http_version", "1.1"]
    headers = {d.args[1]: d.args[2] for d in _find(ws, "proxy_set_header")}
    assert headers["Upgrade"] == "$http_upgrade"
    assert headers["Connection"] == "$connection_upgrade"
    mapping = _one_block(conf, "map", "$http_upgrade", "$connection_upgrade")
    values = {d.args[0]: d.args[1] if len(d.args) > 1 else "" for d in mapping}
    assert values["default"] == "upgrade"
    # The api routes WebSockets under /ws/ (nodedrop.api.ws_relay).
    from nodedrop.api.ws_relay import router

    paths = [getattr(route, "path", "") for route in router.routes]
    assert paths
    assert all(path.startswith("/ws/") for path in paths)


def test_health_checks_use_real_endpoints() -> None:
    from nodedrop.api.routes.health import router

    assert "/readyz" in [getattr(route, "path", "") for route in router.routes]
    notifier = REPO / "services/notifier/src/nodedrop/notifier/websocket.py"
    assert '"/readyz"' in notifier.read_text()
    services = _services()
    for name, port in [
        ("api-1", 8000),
        ("api-2", 8000),
        ("notifier-1", 8001),
        ("notifier-2", 8001),
        ("scheduler", 9100),
        ("runner", 9100),
    ]:
        test = " ".join(
            _str(p, name) for p in _list(_map(services[name]["healthcheck"], name)["test"], name)
        )
        assert f"http://127.0.0.1:{port}/readyz" in test, name
    for name in ("scheduler", "runner"):  # their listener is on, on every interface
        environment = _map(services[name]["environment"], name)
        assert environment["NODEDROP_OPS_PORT"] == "9100"
        assert environment["NODEDROP_OPS_HOST"] == "0.0.0.0"


# ---------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    stage: int
    keyword: str
    args: str


def dockerfile() -> list[Instruction]:
    lines: list[str] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "a continued instruction at the end of the Dockerfile"
    instructions: list[Instruction] = []
    stage = -1
    for line in lines:
        keyword, _, args = line.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(stage, keyword.upper(), args.strip()))
    return instructions


def _dockerfile_json(keyword: str) -> object:
    found = [i for i in dockerfile() if i.keyword == keyword]
    assert len(found) == 1, (keyword, found)
    return json.loads(found[0].args)


def _stages() -> dict[str, list[Instruction]]:
    """Instructions by stage name (the last, unnamed stage is "final")."""
    stages: dict[int, list[Instruction]] = {}
    for instruction in dockerfile():
        stages.setdefault(instruction.stage, []).append(instruction)
    named: dict[str, list[Instruction]] = {}
    for index, instructions in stages.items():
        parts = instructions[0].args.split()
        name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else f"stage{index}"
        named["final" if index == max(stages) else name] = instructions
    return named


def _env(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "ENV":
            for pair in shlex.split(instruction.args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_dockerfile_builds_the_web_ui_with_node_20() -> None:
    web = _stages()["web"]
    assert re.fullmatch(r"node:20(-[\w.-]+)?\s+AS\s+web", web[0].args)
    workdir = [i.args for i in web if i.keyword == "WORKDIR"]
    assert workdir == ["/src/web"]
    runs = [i.args for i in web if i.keyword == "RUN"]
    assert runs[0].startswith("npm ci")
    assert runs[-1] == "npm run build"
    package = json.loads((REPO / "web/package.json").read_text())
    assert "build" in package["scripts"]
    # vite writes the build to web/dist (build.outDir), which the final stage copies.
    assert re.search(r"outDir:\s*\"dist\"", (REPO / "web/vite.config.ts").read_text())


def test_dockerfile_installs_every_distribution_non_editable() -> None:
    stages = _stages()
    build = stages["build"]
    assert re.fullmatch(r"python:3\.11-slim\s+AS\s+build", build[0].args)
    assert stages["final"][0].args == "python:3.11-slim"
    install = [i.args for i in build if i.keyword == "RUN" and "pip install" in i.args]
    assert len(install) == 1
    words = shlex.split(install[0].split("pip install", 1)[1].split("&&")[0])
    assert "-e" not in words
    assert "--editable" not in words
    assert words == [
        "./libs/contracts[db]",
        "./services/api",
        "./services/scheduler",
        "./services/runner",
        "./services/notifier",
        ".",
    ]
    services = sorted(p.parent.name for p in (REPO / "services").glob("*/pyproject.toml"))
    assert services == ["api", "notifier", "runner", "scheduler"]
    contracts = tomllib.loads((REPO / "libs/contracts/pyproject.toml").read_text())
    assert "db" in contracts["project"]["optional-dependencies"]
    # What the installs read is in the image: COPY sources exist and the context keeps them.
    copies = [i.args.split() for i in build if i.keyword == "COPY"]
    sources = [source for *sources, _ in copies for source in sources]
    assert {"pyproject.toml", "README.md", "src/", "libs/", "services/"} <= set(sources)


def test_dockerfile_serves_the_ui_from_where_the_api_looks() -> None:
    final = _stages()["final"]
    copies = [i.args.split() for i in final if i.keyword == "COPY"]
    web = [c for c in copies if c[0] == "--from=web"]
    assert len(web) == 1
    _, source, target = web[0]
    assert source == "/src/web/dist"
    env = _env(final)
    # The api's settings read NODEDROP_WEB_DIR; the default is a checkout's web/dist.
    assert env["NODEDROP_WEB_DIR"] == target
    from nodedrop.api.settings import ApiSettings

    assert ApiSettings.from_env({"NODEDROP_WEB_DIR": target}).web_dir == Path(target)
    assert env["PATH"].startswith("/opt/nodedrop/bin:")
    assert ["--from=build", "/opt/nodedrop", "/opt/nodedrop"] in copies


def test_dockerfile_runs_nodedrop_as_a_non_root_user() -> None:
    final = _stages()["final"]
    users = [i.args for i in final if i.keyword == "USER"]
    assert len(users) == 1
    uid, _, gid = users[0].partition(":")
    assert uid.isdigit()
    assert gid.isdigit()
    assert int(uid) != 0
    assert int(gid) != 0
    assert _dockerfile_json("ENTRYPOINT") == ["nodedrop"]
    command = _dockerfile_json("CMD")
    assert isinstance(command, list)
    assert command[0] in subcommands() or command[0].startswith("-")
    # The chart's pods run as this user (runAsNonRoot needs the numeric id).
    values = Chart(CHART_DIR).values()
    context = _map(values["podSecurityContext"], "podSecurityContext")
    assert context["runAsUser"] == int(uid)
    assert context["runAsGroup"] == int(gid)


# ---------------------------------------------------------------- .dockerignore


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go's filepath.Match plus ``**``), anchored at the context root."""
    assert not pattern.startswith("!"), "exceptions are not supported by this check"
    pattern = pattern.strip("/")
    out = ""
    pos = 0
    while pos < len(pattern):
        if pattern.startswith("**/", pos):
            out += "(?:.*/)?"
            pos += 3
        elif pattern.startswith("**", pos):
            out += ".*"
            pos += 2
        elif pattern[pos] == "*":
            out += "[^/]*"
            pos += 1
        elif pattern[pos] == "?":
            out += "[^/]"
            pos += 1
        elif pattern[pos] == "[":
            end = pattern.index("]", pos)
            out += pattern[pos : end + 1]
            pos = end + 1
        else:
            out += re.escape(pattern[pos])
            pos += 1
    return re.compile(out)


def _ignored(path: str) -> bool:
    patterns = [
        _ignore_regex(line.strip())
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(p.fullmatch(prefix) for p in patterns for prefix in prefixes)


def test_dockerignore_keeps_environments_and_caches_out() -> None:
    for path in [
        ".venv/bin/python",
        "web/node_modules/react/index.js",
        ".nodedrop/admin_token",
        ".git/HEAD",
        "web/dist/index.html",
        "libs/contracts/src/nodedrop/contracts/__pycache__/ids.cpython-311.pyc",
        ".mypy_cache/3.11/x.json",
        ".ruff_cache/CACHEDIR.TAG",
        ".pytest_cache/README.md",
        ".hypothesis/examples/x",
        "deploy/.env",
        "services/api/nodedrop_api.egg-info/PKG-INFO",
    ]:
        assert _ignored(path), path


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    sources: list[str] = []
    for instruction in dockerfile():
        if instruction.keyword == "COPY" and not instruction.args.startswith("--from="):
            *from_context, _ = instruction.args.split()
            sources.extend(from_context)
    assert sources
    for source in sources:
        assert (REPO / source).exists(), source
        assert not _ignored(source), source
    for path in [
        "src/nodedrop/cli/main.py",
        "libs/contracts/pyproject.toml",
        "libs/contracts/src/nodedrop/platform/db/migrations/env.py",
        "services/api/src/nodedrop/api/webui.py",
        "web/src",
        "web/tsconfig.json",
        "deploy/Dockerfile",
    ]:
        assert not _ignored(path), path
    # Every distribution's pyproject.toml and the web build inputs survive.
    for pyproject in [REPO / "pyproject.toml", *REPO.glob("*/*/pyproject.toml")]:
        relative = str(pyproject.relative_to(REPO))
        if relative.startswith(("libs/", "services/")):
            assert not _ignored(relative), relative


# ---------------------------------------------------------------- Helm chart


def _chart_yaml() -> dict[str, object]:
    return _map(_load_yaml(CHART_DIR / "Chart.yaml"), "Chart.yaml")


def _rendered(
    release: str = "prod", values: dict[str, object] | None = None
) -> list[dict[str, object]]:
    output = Chart(CHART_DIR).render(release, values)
    documents: list[dict[str, object]] = []
    for name, text in output.items():
        for document in yaml.safe_load_all(text):
            if document is not None:
                documents.append(_map(document, name))
    return documents


def _by_kind(documents: list[dict[str, object]], kind: str) -> dict[str, dict[str, object]]:
    return {
        _str(_map(d["metadata"], "metadata")["name"], kind): d
        for d in documents
        if d.get("kind") == kind
    }


def _pod_spec(workload: dict[str, object]) -> dict[str, object]:
    spec = _map(workload["spec"], "spec")
    return _map(_map(spec["template"], "template")["spec"], "pod spec")


def _container(workload: dict[str, object]) -> dict[str, object]:
    containers = _list(_pod_spec(workload)["containers"], "containers")
    assert len(containers) == 1
    return _map(containers[0], "container")


def _container_env(container: dict[str, object]) -> dict[str, dict[str, object]]:
    env = [_map(e, "env") for e in _list(container["env"], "env")]
    names = [_str(e["name"], "env name") for e in env]
    assert len(names) == len(set(names)), f"duplicate variables: {names}"
    return dict(zip(names, env, strict=True))


def test_chart_depends_on_the_official_nats_chart() -> None:
    chart = _chart_yaml()
    assert chart["apiVersion"] == "v2"
    dependencies = [_map(d, "dependency") for d in _list(chart["dependencies"], "dependencies")]
    assert len(dependencies) == 1
    nats = dependencies[0]
    assert nats["name"] == "nats"
    assert nats["repository"] == "https://nats-io.github.io/k8s/helm/charts/"
    assert re.fullmatch(r"\d+\.\d+\.\d+", _str(nats["version"], "version"))
    assert nats["condition"] == "nats.enabled"


def test_chart_values_make_nats_a_three_node_jetstream_cluster() -> None:
    values = Chart(CHART_DIR).values()
    nats = _map(values["nats"], "nats")
    assert nats["enabled"] is True
    config = _map(nats["config"], "nats.config")
    cluster = _map(config["cluster"], "cluster")
    assert cluster["enabled"] is True
    assert cluster["replicas"] == 3
    jetstream = _map(config["jetstream"], "jetstream")
    assert jetstream["enabled"] is True
    file_store = _map(jetstream["fileStore"], "fileStore")
    assert file_store["enabled"] is True
    assert _map(file_store["pvc"], "pvc")["enabled"] is True
    assert _map(jetstream["merge"], "jetstream.merge") == {"sync_interval": "always"}
    assert values["streamReplicas"] == cluster["replicas"]


EXPECTED_DEPLOYMENTS = {"api": 2, "scheduler": 2, "notifier": 2, "runner": 3}


def test_chart_renders_the_deployments() -> None:
    values = Chart(CHART_DIR).values()
    image = _map(values["image"], "image")
    documents = _rendered("prod")
    for document in documents:
        assert {"apiVersion", "kind", "metadata"} <= set(document)
    deployments = _by_kind(documents, "Deployment")
    assert set(deployments) == {f"prod-{name}" for name in EXPECTED_DEPLOYMENTS}
    for component, replicas in EXPECTED_DEPLOYMENTS.items():
        deployment = deployments[f"prod-{component}"]
        spec = _map(deployment["spec"], "spec")
        assert spec["replicas"] == replicas, component
        # The selector picks the pods of this template, and only this component's.
        selector = _map(_map(spec["selector"], "selector")["matchLabels"], "matchLabels")
        labels = _map(_map(_map(spec["template"], "t")["metadata"], "m")["labels"], "labels")
        assert selector.items() <= labels.items()
        assert selector["app.kubernetes.io/component"] == component
        container = _container(deployment)
        assert container["image"] == f"{image['repository']}:{image['tag']}"
        assert container["command"] == ["nodedrop"]
        assert container["args"] == [component]
        assert component in subcommands()
        env = _container_env(container)
        assert unknown_variables(env) == []
        assert env["NODEDROP_NATS_URL"]["value"] == "nats://prod-nats:4222"
        assert env["NODEDROP_STREAM_REPLICAS"]["value"] == "3"
        assert env["NODEDROP_PARTITIONS"]["value"] == "8"
        assert "NODEDROP_NATS_TOKEN" not in env  # secret.natsTokenKey is empty by default
        pod = _pod_spec(deployment)
        assert _map(pod["securityContext"], "securityContext")["runAsNonRoot"] is True
        # Who gets which secret: the database for its readers and writers (the runners read
        # credentials), the admin key for the servers, the encryption key for the api and the
        # runners only.
        for variable, key, components in [
            ("NODEDROP_DATABASE_URL", "database-url", {"api", "notifier", "runner"}),
            ("NODEDROP_ADMIN_TOKEN", "admin-token", {"api", "notifier"}),
            ("NODEDROP_SECRET_KEY", "secret-key", {"api", "runner"}),
        ]:
            if component not in components:
                assert variable not in env, (component, variable)
                continue
            reference = _map(_map(env[variable]["valueFrom"], "valueFrom")["secretKeyRef"], "ref")
            assert reference == {"name": "nodedrop", "key": key}, component
        if component in {"api", "notifier"}:
            assert env["NODEDROP_HOST"]["value"] == "0.0.0.0"


def test_chart_api_reaches_the_notifiers_through_their_service() -> None:
    documents = _rendered("prod")
    deployments = _by_kind(documents, "Deployment")
    services = _by_kind(documents, "Service")
    assert set(services) == {"prod-api", "prod-notifier"}
    api_env = _container_env(_container(deployments["prod-api"]))
    [(scheme, host, port)] = _url_list(_str(api_env["NODEDROP_NOTIFIER_URL"]["value"], "url"))
    assert (scheme, host) == ("http", "prod-notifier")
    notifier_service = _map(services[host]["spec"], "spec")
    [service_port] = [_map(p, "port") for p in _list(notifier_service["ports"], "ports")]
    assert service_port["port"] == port
    notifier = _container(deployments["prod-notifier"])
    notifier_env = _container_env(notifier)
    assert int(_str(notifier_env["NODEDROP_NOTIFIER_PORT"]["value"], "port")) == port
    for component in ("api", "notifier"):
        service = _map(services[f"prod-{component}"]["spec"], "spec")
        selector = _map(service["selector"], "selector")
        deployment = deployments[f"prod-{component}"]
        template = _map(_map(deployment["spec"], "spec")["template"], "template")
        labels = _map(_map(template["metadata"], "metadata")["labels"], "labels")
        assert selector.items() <= labels.items(), component
        container = _container(deployment)
        container_ports = {
            _str(_map(p, "port")["name"], "name"): _map(p, "port")["containerPort"]
            for p in _list(container["ports"], "ports")
        }
        for port_spec in _list(service["ports"], "ports"):
            assert _map(port_spec, "port")["targetPort"] in container_ports, component
        probe = _map(_map(container["readinessProbe"], "probe")["httpGet"], "httpGet")
        assert probe["path"] == "/readyz"
        assert probe["port"] in container_ports


def test_chart_probes_and_scrapes_every_service_on_a_port_it_listens_on() -> None:
    """Kubernetes' probes and Prometheus' scrape annotations point at /livez, /readyz and
    /metrics on a port the container declares: the api's and the notifier's own, the
    scheduler's and the runner's ops listener, which the chart turns on (NODEDROP_OPS_PORT)."""
    from nodedrop.platform.ops import answer

    for path in ("/livez", "/readyz", "/metrics"):
        assert answer(path, {}) is not None
    deployments = _by_kind(_rendered("prod"), "Deployment")
    for component in ("api", "scheduler", "runner", "notifier"):
        deployment = deployments[f"prod-{component}"]
        container = _container(deployment)
        ports = {
            _str(_map(p, "port")["name"], "name"): _map(p, "port")["containerPort"]
            for p in _list(container["ports"], "ports")
        }
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/livez")):
            get = _map(_map(container[probe], probe)["httpGet"], "httpGet")
            assert (get["path"], get["port"] in ports) == (path, True), component
        template = _map(_map(deployment["spec"], "spec")["template"], "template")
        annotations = _map(_map(template["metadata"], "metadata")["annotations"], "annotations")
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(_str(annotations["prometheus.io/port"], "port")) in ports.values(), component
        if component in ("scheduler", "runner"):
            env = _container_env(container)
            assert int(_str(env["NODEDROP_OPS_PORT"]["value"], "port")) == ports["ops"]
            assert env["NODEDROP_OPS_HOST"]["value"] == "0.0.0.0"


def test_chart_migrates_before_install_and_upgrade() -> None:
    jobs = _by_kind(_rendered("prod"), "Job")
    assert set(jobs) == {"prod-migrate"}
    job = jobs["prod-migrate"]
    annotations = _map(_map(job["metadata"], "metadata")["annotations"], "annotations")
    hooks = set(_str(annotations["helm.sh/hook"], "hook").split(","))
    assert hooks == {"pre-install", "pre-upgrade"}
    container = _container(job)
    assert container["command"] == ["nodedrop"]
    assert container["args"] == ["migrate"]
    assert "migrate" in subcommands()
    env = _container_env(container)
    assert set(env) == {"NODEDROP_DATABASE_URL"}
    assert _pod_spec(job)["restartPolicy"] == "Never"


def test_chart_values_can_point_at_another_nats_and_add_variables() -> None:
    values = Chart(CHART_DIR).values()
    values["natsUrl"] = "nats://a:4222,nats://b:4222"
    values["extraEnv"] = [{"name": "NODEDROP_RETENTION_DAYS", "value": "7"}]
    notifier = dict(_map(values["notifier"], "notifier"))
    notifier["allowedOrigins"] = "https://nodedrop.example"
    values["notifier"] = notifier
    secret = dict(_map(values["secret"], "secret"))
    secret["natsTokenKey"] = "nats-token"
    values["secret"] = secret
    documents = _rendered("other", values)
    deployments = _by_kind(documents, "Deployment")
    for component in EXPECTED_DEPLOYMENTS:
        env = _container_env(_container(deployments[f"other-{component}"]))
        assert env["NODEDROP_NATS_URL"]["value"] == "nats://a:4222,nats://b:4222"
        assert env["NODEDROP_RETENTION_DAYS"]["value"] == "7"
        token = _map(_map(env["NODEDROP_NATS_TOKEN"]["valueFrom"], "from")["secretKeyRef"], "ref")
        assert token == {"name": "nodedrop", "key": "nats-token"}
        assert unknown_variables(env) == []
    migrate = _container_env(_container(_by_kind(documents, "Job")["other-migrate"]))
    assert set(migrate) == {"NODEDROP_DATABASE_URL", "NODEDROP_RETENTION_DAYS"}
    notifier_env = _container_env(_container(deployments["other-notifier"]))
    assert notifier_env["NODEDROP_ALLOWED_ORIGINS"]["value"] == "https://nodedrop.example"


# ---------------------------------------------------------------- the renderer itself


def _chart(tmp_path: Path, template: str, values: str = "a: 1\n") -> Chart:
    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "values.yaml").write_text(values)
    (tmp_path / "templates" / "t.yaml").write_text(template)
    return Chart(tmp_path)


def test_renderer_supports_the_subset(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "_h.tpl").write_text(
        '{{/* a comment */}}\n{{- define "h.labels" -}}\nx: {{ .Release.Name }}\ny: 1\n{{- end }}\n'
    )
    chart = _chart(
        tmp_path,
        'a:\n  {{- include "h.labels" . | nindent 2 }}\n'
        'b: {{ .Values.empty | default "d" | quote }}\n'
        "c: {{ $.Values.n }}\n"
        "{{- if .Values.flag }}\nd: set\n{{- else }}\nd: unset\n{{- end }}\n"
        "e:\n{{- range .Values.items }}\n  - {{ .name }}\n{{- end }}\n"
        "f:\n  {{- toYaml .Values.m | nindent 2 }}\n",
        "empty: ''\nn: 3\nflag: false\nitems: [{name: p}, {name: q}]\nm: {k: v, j: [1]}\n",
    )
    output = chart.render("rel")["t.yaml"]
    assert yaml.safe_load(output) == {
        "a": {"x": "rel", "y": 1},
        "b": "d",
        "c": 3,
        "d": "unset",
        "e": ["p", "q"],
        "f": {"j": [1], "k": "v"},
    }


@pytest.mark.parametrize(
    "template",
    [
        "{{ with .Values }}x{{ end }}",
        '{{ printf "%s" .Values.a }}',
        "{{ .Values.missing }}",
        "{{ .Values.a.b }}",
        "{{ $x := 1 }}",
        "{{ if .Values.a }}x{{ else if .Values.a }}y{{ end }}",
        "{{ .Chart.Name }}",
        '{{ include "nowhere" . }}',
        "{{ .Values.a | nindent }}",
        "{{ .Values }}",
        "{{ ( .Values.a ) }}",
        "{{ if .Values.a }}x",
        "{{ end }}",
        "{{ range .Values.m }}x{{ end }}",
        "{{ /* not a comment */ }}",
        "{{ .Values.a",
    ],
)
def test_renderer_refuses_what_it_does_not_support(tmp_path: Path, template: str) -> None:
    with pytest.raises(TemplateError):
        _chart(tmp_path, template, "a: 1\nm: {k: v}\n").render("rel")
