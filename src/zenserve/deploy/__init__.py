"""Zero-downtime releases: one stable release, at most one candidate, moved by a strategy.

The pieces, each small:

- ``release``: a release is a TOML file (version, architecture, service, strategy);
- ``supervisor``: one process that owns the listening socket for its whole life
  and runs each release as a *generation* of worker processes;
- ``router``: the supervisor accepts every connection itself and passes its
  descriptor (SCM_RIGHTS) to a worker of the generation a smooth weighted
  round-robin picks, so a 10% canary gets every tenth connection;
- ``worker`` and ``handoff``: a worker serves routed connections with any
  deployable architecture, measures each answer, and when its generation is
  drained hands every open connection back at a request boundary (which
  ``tracked_conversation`` tells), so a persistent client moves to the new
  generation without noticing;
- ``rollout`` and ``analysis``: the step engine (rolling, blue-green, canary)
  and the verdict at each step;
- ``control``: the owner-only unix socket behind ``zenserve deploy status``,
  ``release``, ``promote``, ``abort`` and ``apply``;
- ``haproxy``: the same step engine driving a real HAProxy through its Runtime API;
- ``render``: haproxy.cfg, systemd units and Kubernetes manifests.
"""
