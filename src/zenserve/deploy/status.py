"""`zenserve deploy status`: generations, weights, live success ratio and p99, the rollout."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from zenserve.deploy.analysis import format_seconds

if TYPE_CHECKING:
    from zenserve.deploy.commands import Commands, Site
    from zenserve.deploy.fleet import Fleet

Message = dict[str, Any]


def describe(site: Site, commands: Commands) -> Message:
    """The supervisor's state as plain JSON-able data."""
    rollout = site.rollout
    described_rollout = None
    if rollout is not None and rollout.result is None:
        described_rollout = {"deployment": commands.deployment, **rollout.describe(),
                             "followers": len(commands.waiters)}
    last = commands.history[max(commands.history)] if commands.history else None
    total = site.totals()
    return {
        "address": site.address, "control": str(commands.control_path), "pid": os.getpid(),
        "stable": {"version": site.stable.release.version, "generation": site.stable.id,
                   "fingerprint": site.stable.release.fingerprint},
        "answers": total.answers, "failures": total.failures,
        "generations": site.generations_status(), "rollout": described_rollout,
        "last_result": last,
        "events": [{"time": when, "text": text} for when, text in list(commands.events)[-10:]],
    }


def local_generations(fleet: Fleet) -> list[Message]:
    """Each generation of workers on this host, with its share and its live numbers."""
    weights = fleet.router.weights()
    total_weight = sum(weights.values()) or 1
    generations = []
    for generation in fleet.generations.values():
        total, recent = generation.sample(), fleet.recent_sample(generation)
        generations.append({
            "generation": generation.id, "version": generation.release.version,
            "role": generation.role, "architecture": generation.release.architecture,
            "share": round(100 * weights.get(generation.id, 0) / total_weight, 1),
            "target": generation.target, "ready": len(generation.ready()),
            "routed": generation.routed,
            "workers": [{"pid": worker.pid, "state": worker.state, "active": worker.active,
                         "answers": worker.sample.answers} for worker in generation.workers],
            "answers": total.answers, "failures": total.failures,
            "success_ratio": total.success_ratio,
            "recent_answers": recent.answers, "recent_success_ratio": recent.success_ratio,
            "recent_p99": recent.p99, "restarts": generation.restarts,
            "handed_off": sum(worker.handed_off for worker in generation.workers),
        })
    return generations


def render(status: Message) -> str:
    """The status as a few aligned lines for a terminal."""
    lines = [f"zenserve deploy at {status['address']} (control {status['control']}, "
             f"pid {status['pid']}); stable: {status['stable']['version']}"]
    header = ("gen", "version", "role", "share", "workers", "answers", "success", "recent p99")
    rows = [header]
    for generation in status["generations"]:
        rows.append((
            str(generation["generation"]), generation["version"], generation["role"],
            f"{generation['share']:g}%", f"{generation['ready']}/{generation['target']}",
            str(generation["answers"]), _ratio(generation["success_ratio"]),
            format_seconds(generation["recent_p99"]) if generation["recent_p99"] else "-",
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    rollout = status["rollout"]
    if rollout:
        lines.append(_describe_rollout(rollout))
    elif status["last_result"]:
        last = status["last_result"]
        lines.append(f"last rollout: {last['version']} {last['result']}"
                     + (f" ({last['reason']})" if last["reason"] else ""))
    for event in status["events"][-5:]:
        stamp = time.strftime("%H:%M:%S", time.localtime(event["time"]))
        lines.append(f"  {stamp} {event['text']}")
    return "\n".join(lines)


def _describe_rollout(rollout: Message) -> str:
    text = (f"rollout {rollout['deployment']}: {rollout['version']} by {rollout['strategy']}, "
            f"{rollout['phase']}")
    if rollout.get("step"):
        text += (f" {rollout['step']} of {len(rollout['steps'])} ({rollout['share']}%), "
                 f"{rollout['step_elapsed']:.1f}s of {rollout['pause']:g}s: "
                 f"{rollout['verdict']} ({rollout['verdict_reason']})")
    return text


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"
