"""How a half-step's tasks on the Dask engine get the fixed side's rows, never through the client: broadcast
(each worker assembles the whole src matrix once from its peers' row futures) or routed (each worker receives
from each src block only the rows its blocks read, the blocks re-indexed to them; ``dask_routing``), chosen
per dst side by ``dask_routing.choose`` or by engine.routing, and sent ahead: a half-step's new rows start on
their way to the next half-step as soon as they are made. The client submits the tasks and holds keys."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import numpy as np

from recsys_dist.executors import dask_routing as routing
from recsys_dist.executors.dask_tasks import _assemble, half_rows

log = logging.getLogger(__name__)


def near(holders) -> dict[str, Any]:  # noqa: ANN001 - the worker addresses holding a block
    """Submit options that run a task where its block lives, or anywhere when no worker holds it (the block
    was lost with its worker and Dask rebuilds it from its loader task): Dask refuses
    ``allow_other_workers`` without ``workers``."""
    return {"workers": list(holders), "allow_other_workers": True} if holders else {}


class Sending:
    """The src inputs of the Dask executor's block tasks, and the routing tables behind the routed ones."""

    def __init__(self, ex: Any, mode: str) -> None:
        self.ex, self.mode = ex, mode
        self.routes: dict[tuple[str, str], dict[str, Any]] = {}  # (dst side, src side) -> tables, mode, figures
        self.reader: dict[str, tuple[str, bool]] = {}  # matrix -> (dst side, routed) of the last step reading it
        self.ready: dict[str, tuple[tuple, dict[int, tuple]]] = {}  # matrix -> (what for, inputs) sent ahead

    def inputs(self, side: str, src: str | None, homes: list[tuple[str, ...]], routed: bool,
               half: bool = False) -> dict[int, tuple]:
        """Per block of ``side``: (the block to run on, the future of the src matrix it reads, or None); the ones
        ``ahead`` started if they were for this step (``routed``: a half-step), these homes and these rows.
        ``half``: the src matrix as float16 bits, each src block narrowed where it lives before it is sent."""
        if src is None:
            return self._inputs(side, None, homes, routed, [])
        parts = self.ex._shards[src][1]
        if routed:  # a half-step: the reader the next rows of ``src`` are sent to ahead
            self.reader[src] = (side, routed, half)
        early = self.ready.get(src)
        if early is not None and early[0] == (side, routed, half, tuple(p.key for p in parts), tuple(homes)):
            return self.ready.pop(src)[1]
        return self._inputs(side, src, homes, routed, parts, half)

    def ahead(self, name: str, parts: list) -> None:
        """Start sending matrix ``name``'s new rows (``parts``, the futures of the half-step just submitted) to
        the step that read ``name`` last time, as if it came next (in ALS it does): the sends and the assembly
        then start as each worker's blocks finish, not after the client has heard from all of them and
        submitted the next step (traced on 2 workers: 50-90 ms per half-step of idle kernels). A worker then
        holds this step's src and the next one's at once, as the memory estimate already allows."""
        self.ready.pop(name, None)
        if name not in self.reader:
            return
        side, routed, half = self.reader[name]
        homes = self.ex._homes(self.ex._blocks[side])
        self.ready[name] = ((side, routed, half, tuple(p.key for p in parts), tuple(homes)),
                            self._inputs(side, name, homes, routed, parts, half))

    def _inputs(self, side: str, src: str | None, homes: list[tuple[str, ...]], routed: bool,
                parts: list, half: bool = False) -> dict[int, tuple]:
        ex = self.ex
        blocks = ex._blocks[side]
        route = self._route(side, src, 2 if half else 4) if routed and src is not None else None
        routed_here = route is not None and route["mode"] == "routed"
        part_homes = ex._homes(ex._blocks[ex._shards[src][0]]) if src is not None and (half or routed_here) else []
        if half:  # each src block narrowed once, where it lives (and may not be finished yet)
            parts = [ex.client.submit(half_rows, part, pure=False, retries=0, **near(home))
                     for part, home in zip(parts, part_homes)]
        if routed_here:
            # each src part is made where its src block lives (and may not be finished yet)
            compact = []
            for g, home in enumerate(route["homes"]):
                # a remote src block sends the rows read; one on the group's own worker is picked in place
                pieces = [(part, route["picks"][g][b]) if home and part_homes[b] == home else
                          ex.client.submit(routing.take_rows, part, route["picks"][g][b], pure=False, retries=0,
                                           **near(part_homes[b])) for b, part in enumerate(parts)]
                compact.append(ex.client.submit(routing.assemble, *pieces, pure=False, retries=0, **near(home),
                                                key=f"routed-{src}-{uuid.uuid4().hex[:8]}"))
            return {b: (route["blocks"][b], compact[route["group"][b]]) for b in range(len(blocks))}
        broadcast: dict[tuple[str, ...], Any] = {}
        if src is not None:
            for home in sorted(set(homes)):
                broadcast[home] = ex.client.submit(_assemble, *parts, pure=False, retries=0, **near(home),
                                                   key=f"broadcast-{src}-{uuid.uuid4().hex[:8]}")
        copies = list(broadcast.values())
        return {b: (block, broadcast.get(homes[b]) if homes[b] else (copies[b % len(copies)] if copies else None))
                for b, block in enumerate(blocks)}

    def _route(self, side: str, src: str, value_bytes: int = 4) -> dict[str, Any]:
        """The routing tables of half-steps over ``side`` reading matrix ``src`` (built on first use, on the
        workers, from the blocks), and the mode the cost model (rows of ``value_bytes`` per value: 2 when sent
        as float16) or engine.routing chose. The rows each worker
        reads are counted in every mode (one pass over the blocks, where they are), so the cost model's figures
        are there to compare with the measured transfers."""
        ex = self.ex
        src_side = ex._shards[src][0]
        key = (side, src_side)
        if key in self.routes:
            return self.routes[key]
        blocks, src_bounds = ex._blocks[side], ex._bounds[src_side]
        homes = ex._homes(blocks)
        groups = sorted(set(homes))  # the blocks one worker holds share one compact matrix
        group = [groups.index(home) for home in homes]
        edges = np.array([lo for lo, _ in src_bounds] + [src_bounds[-1][1]], np.int64)
        needed = [ex.client.submit(routing.needed_rows, edges, *[blocks[b] for b in range(len(blocks)) if group[b] == g],
                                   pure=False, **near(home)) for g, home in enumerate(groups)]
        reads = dict(enumerate(ex.waiting.gather(ex.client.map(routing.counts, needed, pure=False),
                                          f"routing the {side} half-steps")))
        src_homes = ex._homes(ex._blocks[src_side])
        src_group = [groups.index(h) if h in groups else -1 for h in src_homes]
        mode, figures = routing.choose(self.mode, src_bounds, src_group, reads, ex._cols[src] * value_bytes)
        route: dict[str, Any] = {"mode": mode, **figures}
        if mode == "routed":
            route.update(homes=groups, group=group,
                         picks=[[ex.client.submit(routing.pick, needed[g], b, pure=False, **near(home))
                                 for b in range(len(src_bounds))] for g, home in enumerate(groups)],
                         blocks=[ex.client.submit(routing.localize, block, needed[group[b]], pure=False,
                                                  **near(homes[b])) for b, block in enumerate(blocks)])
            ex.waiting.check(dict(enumerate(route["blocks"])), side, f"routing the {side} half-steps")
        log.info("the %s half-steps: %s (the busiest worker receives %.1f MB broadcast, %.1f MB routed)", side,
                 mode, figures["broadcast_bytes_per_worker"] / 1e6, figures["routed_bytes_per_worker"] / 1e6)
        self.routes[key] = route
        return route

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per dst side: the mode and the cost model's bytes (per busiest worker and in all) per half-step."""
        return {side: {k: v for k, v in route.items() if k == "mode" or k.endswith("bytes") or k.endswith("_worker")}
                for (side, _), route in self.routes.items()}
