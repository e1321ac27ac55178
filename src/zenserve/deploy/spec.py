"""What a worker is asked to serve: a release's server config, as JSON on the control channel."""

from __future__ import annotations

import json
from pathlib import Path

from zenserve.config import Limits, ServerConfig, ServiceConfig
from zenserve.cost import Cost, CostKind


def spec_to_json(config: ServerConfig, table_digest: str = "") -> str:
    """What a worker needs to serve, as one JSON string."""
    service, limits = config.service, config.limits
    return json.dumps({
        "table_digest": table_digest,
        "architecture": config.architecture, "threads": config.threads,
        "verbose": config.verbose,
        "service": {"aphorisms": str(service.aphorisms) if service.aphorisms else None,
                    "callable": service.callable_spec, "cost": service.cost.seconds,
                    "cost_kind": service.cost.kind.value, "fault_rate": service.fault_rate},
        "limits": {"max_request_bytes": limits.max_request_bytes,
                   "idle_timeout": limits.idle_timeout,
                   "request_timeout": limits.request_timeout,
                   "max_connections": limits.max_connections,
                   "graceful_timeout": limits.graceful_timeout},
    })


def spec_from_json(text: str) -> tuple[ServerConfig, str]:
    """The config and the digest of the table the supervisor read."""
    spec = json.loads(text)
    service = spec["service"]
    return ServerConfig(
        architecture=spec["architecture"], threads=spec["threads"], verbose=spec["verbose"],
        service=ServiceConfig(
            aphorisms=Path(service["aphorisms"]) if service["aphorisms"] else None,
            callable_spec=service["callable"],
            cost=Cost(service["cost"], CostKind(service["cost_kind"])),
            fault_rate=service["fault_rate"]),
        limits=Limits(**spec["limits"]),
    ), spec["table_digest"]
