"""Kubernetes manifests for releases: a canary is two Deployments behind one Service.

The Service selects every pod of the app, so the canary's share of new
connections is its share of ready pods (``replicas``): scale the canary
Deployment up and the stable one down step by step (or hand both to Argo
Rollouts). Each pod is ready only when ``zenserve ask`` gets a right answer
from it; before it stops, ``preStop`` waits for the endpoint to be removed,
then SIGTERM lets zenserve finish every request it received.
"""

from __future__ import annotations

import json
from typing import Any

from zenserve.deploy.release import Release

APP = "zenserve"
MOUNT = "/etc/zenserve"
# How long preStop waits for the Service to stop sending new connections here.
PRESTOP_SECONDS = 5


def serve_arguments(release: Release, host: str, port: int, aphorisms: str | None) -> list[str]:
    """`zenserve serve` arguments that run ``release`` (as its own workers would)."""
    service, limits = release.service, release.limits
    arguments = ["serve", host, "-p", str(port), "--arch", release.architecture,
                 "--threads", str(release.threads)]
    if release.workers > 1:
        arguments += ["--workers", str(release.workers)]
    if aphorisms:
        arguments += ["--aphorisms", aphorisms]
    if service.callable_spec:
        arguments += ["--service", service.callable_spec]
    if not service.cost.is_free:
        arguments += ["--cost", f"{service.cost.seconds:g}s", "--cost-kind",
                      service.cost.kind.value]
    arguments += ["--max-request-bytes", str(limits.max_request_bytes),
                  "--idle-timeout", f"{limits.idle_timeout:g}s",
                  "--request-timeout", f"{limits.request_timeout:g}s",
                  "--max-connections", str(limits.max_connections),
                  "--graceful-timeout", f"{limits.graceful_timeout:g}s"]
    return arguments


def manifests(releases: list[Release], image: str, port: int, replicas: int,
              canary_replicas: int) -> str:
    """The YAML documents: a ConfigMap per table, a Deployment per release, one Service."""
    documents: list[dict[str, Any]] = []
    for index, release in enumerate(releases[:2]):
        track = "stable" if index == 0 else "canary"
        if release.service.aphorisms is not None:
            documents.append(_config_map(release))
        documents.append(_deployment(release, track, image, port,
                                     replicas if track == "stable" else canary_replicas))
    documents.append({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": APP, "labels": {"app": APP}},
        "spec": {"selector": {"app": APP},
                 "ports": [{"name": "zen", "port": port, "targetPort": "zen"}]},
    })
    header = ("# Rendered by `zenserve deploy render kubernetes`. The canary's share of new\n"
              "# connections is its share of ready pods: scale zenserve-canary up and\n"
              "# zenserve-stable down step by step.\n")
    return header + "".join(f"---\n{to_yaml(document)}" for document in documents)


def _config_map(release: Release) -> dict[str, Any]:
    assert release.service.aphorisms is not None
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": f"{APP}-{_name(release.version)}",
                     "labels": {"app": APP, "version": release.version}},
        "data": {"aphorisms.toml": release.service.aphorisms.read_text(encoding="utf-8")},
    }


def _deployment(release: Release, track: str, image: str, port: int,
                replicas: int) -> dict[str, Any]:
    table = f"{MOUNT}/aphorisms.toml" if release.service.aphorisms is not None else None
    ask = ["zenserve", "ask", "127.0.0.1", "-p", str(port), "-n", "1", "--timeout", "2"]
    if table:
        ask += ["--aphorisms", table]  # a random question of the table, its answer checked
    elif release.service.callable_spec:
        ask += ["-q", release.health.question]  # any answer from a callable
    # else: PEP 20, which `zenserve ask` checks by default
    container: dict[str, Any] = {
        "name": APP, "image": image, "command": ["zenserve"],
        "args": serve_arguments(release, "0.0.0.0", port, table),
        "ports": [{"name": "zen", "containerPort": port}],
        "readinessProbe": {"exec": {"command": ask}, "periodSeconds": 5,
                           "timeoutSeconds": 3, "failureThreshold": 2},
        "livenessProbe": {"exec": {"command": ask}, "periodSeconds": 10,
                          "timeoutSeconds": 3, "failureThreshold": 3},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(PRESTOP_SECONDS)]}}},
    }
    pod: dict[str, Any] = {
        "terminationGracePeriodSeconds": PRESTOP_SECONDS + int(release.limits.graceful_timeout)
        + 5,
        "containers": [container],
    }
    if table:
        container["volumeMounts"] = [{"name": "aphorisms", "mountPath": MOUNT,
                                      "readOnly": True}]
        pod["volumes"] = [{"name": "aphorisms",
                           "configMap": {"name": f"{APP}-{_name(release.version)}"}}]
    labels = {"app": APP, "track": track, "version": release.version}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"{APP}-{track}", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": APP, "track": track}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def _name(version: str) -> str:
    """A version as a Kubernetes name: lower case, dots and pluses as dashes."""
    return version.lower().replace(".", "-").replace("+", "-").replace("_", "-")


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block-style YAML for dicts and lists of dicts; scalars and scalar lists as JSON."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if _is_flow(item):
                lines.append(f"{pad}{key}: {_scalar(item, indent + 2)}\n")
            else:
                lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 2)}")
    else:
        for item in value:
            nested = to_yaml(item, indent + 2)
            lines.append(f"{pad}- {nested[indent + 2:]}")
    return "".join(lines)


def _is_flow(value: Any) -> bool:
    if isinstance(value, dict):
        return not value
    if isinstance(value, list):
        return all(not isinstance(item, dict | list) for item in value)
    return True


def _scalar(value: Any, indent: int) -> str:
    if isinstance(value, str) and "\n" in value:  # a file: a literal block, easy to read
        body = "".join(f"{' ' * indent}{line}\n" for line in value.splitlines())
        return "|\n" + body[:-1]
    return json.dumps(value)
