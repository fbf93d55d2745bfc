"""Offline ring builder: seeded, deterministic, zone-aware, moving as little as it can.

Modelled on Swift's RingBuilder.rebalance, without its min_part_hours clock:

1. Start from the previous ring's table, if any (partitions remapped by their top bits when
   part_power changes, so growing part_power moves nothing). Slots of removed nodes become
   empty, and so do the fewest slots needed to bring any partition back under the zone cap
   (e.g. after a zone was added, or a node changed zone).
2. Fill every empty slot: first the zone, then the node, furthest below its target (give
   or take a small seeded jitter, see _JITTER). Eligible means not already in the partition
   and its zone below the cap: a hard rule, never traded for balance. A partial row always
   has an eligible node (see `ring.model.zone_cap`).
3. Transfer slots from nodes above their target to nodes below it until every node is
   within [floor(target), ceil(target)] or no legal transfer is left: directly, or through
   a chain of 2-3 moves when the zone cap blocks the direct one. The shard index of a slot
   never changes; only its holder does.

Targets come from `ring.targets.target_assignments`: weight shares, bent only where the
zone rule makes them impossible.

Movement bound. Every move refills an emptied slot or takes a slot from a node above its
target, and a transfer prefers slots already moved in this build (free) or returning to
their original holder. `ring.movement.ideal_movement` is a lower bound no builder can beat
(for adding one node to N equal nodes: partitions * replicas / (N + 1)). For changes that
keep every zone's share below the zone cap and every node below half of the partitions,
build_ring moves at most 1.25 * ideal + len(nodes) (tested; measured: almost always
exactly the ideal). Near those limits - a zone that must hold exactly the cap in every
partition, a node that must sit in nearly every partition - partitions must change their
zone pattern, and any builder pays moves that the bound does not count.
Among equally cheap slots a transfer picks the partition with the fewest shards moved so
far, so a rebalance rarely moves two shards of one partition at once.

Determinism. All tie-breaks come from a splitmix64 hash of (seed, partition, node id): the
same nodes (in any order), policy, part_power, seed and previous ring give the same ring on
any platform and Python version. No global random state is touched.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import xxhash

from ring.model import MAX_NODES, MAX_PART_POWER, Node, Ring, zone_cap
from ring.targets import target_assignments

EMPTY = -1
# Each round runs every transfer phase once; a round that moves nothing ends the loop. Real
# builds settle in a few rounds; the bound only guards against a bug looping forever.
_MAX_ROUNDS = 64
# Longest chain of single-slot moves used to route around the zone cap (see transfer).
_MAX_CHAIN = 3

_U64 = np.uint64
# The fill picks the zone, then the node, furthest below target give or take a seeded jitter
# of this many assignments. Without it the greedy runs in lockstep and ties nodes to fixed
# zone patterns (a node always sharing partitions with the same zone counts), which leaves
# later rebalances few direct moves. The transfer step removes the imbalance it costs.
_JITTER = 2.0


def _unit(x: np.ndarray) -> np.ndarray:
    """uint64 hashes -> floats uniform in [0, 1)."""
    return (x >> _U64(11)).astype(np.float64) / float(1 << 53)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser over a uint64 array (wrapping arithmetic, portable)."""
    x = np.asarray(x, dtype=_U64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> _U64(27))) * _U64(0x94D049BB133111EB)
    return x ^ (x >> _U64(31))


def build_ring(nodes: Sequence[Node], *, k: int, m: int, part_power: int, seed: int,
               previous: Ring | None = None) -> Ring:
    """Build a ring for erasure policy k+m over `nodes`, moving as little as possible from
    `previous` (same k+m required). The result's version is previous.version + 1, or 1.

    Raises ValueError for fewer than k+m nodes, duplicate node ids, a bad policy or
    part_power, or a previous ring with a different number of shards per partition.
    """
    replicas = _check_policy(k, m, part_power, seed)
    ordered = _check_nodes(nodes, replicas)
    if previous is not None:
        if not isinstance(previous, Ring):
            raise ValueError(f"previous must be a Ring, got {type(previous).__name__}")
        if previous.replicas != replicas:
            raise ValueError(
                f"previous ring has {previous.replicas} shards per partition but k+m={replicas}: "
                f"changing the shard count cannot reuse the old placement; build a fresh ring "
                f"(previous=None) and migrate the data")
    placement = _Placement(ordered, replicas, part_power, seed)
    if previous is not None:
        placement.start_from(previous)
    placement.clear_over_cap()
    placement.fill_empty()
    placement.transfer()
    return Ring(
        version=previous.version + 1 if previous is not None else 1,
        k=k, m=m, part_power=part_power, seed=seed,
        nodes=tuple(ordered),
        table=tuple(map(tuple, placement.table.tolist())),
    )


def _check_policy(k: int, m: int, part_power: int, seed: int) -> int:
    for name, value in (("k", k), ("m", m), ("part_power", part_power), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r}")
    if k < 1 or m < 0:
        raise ValueError(f"erasure policy needs k >= 1 and m >= 0, got k={k} m={m}")
    if not 0 <= part_power <= MAX_PART_POWER:
        raise ValueError(f"part_power must be in 0..{MAX_PART_POWER}, got {part_power}")
    return k + m


def _check_nodes(nodes: Sequence[Node], replicas: int) -> list[Node]:
    nodes = list(nodes)
    if not all(isinstance(n, Node) for n in nodes):
        raise ValueError("nodes must be Node instances")
    ids = [n.id for n in nodes]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate node ids: {sorted({i for i in ids if ids.count(i) > 1})}")
    if len(nodes) < replicas:
        raise ValueError(f"need at least k+m={replicas} nodes to place {replicas} distinct "
                         f"shards per partition, got {len(nodes)}")
    if len(nodes) > MAX_NODES:
        raise ValueError(f"a ring holds at most {MAX_NODES} nodes, got {len(nodes)}")
    # Sorted by id so the input order cannot change the ring.
    return sorted(nodes, key=lambda n: n.id)


class _Placement:
    """Mutable working state of one build; never escapes build_ring."""

    def __init__(self, nodes: list[Node], replicas: int, part_power: int, seed: int) -> None:
        self.nodes = nodes
        self.partitions = 1 << part_power
        self.replicas = replicas
        zone_names = sorted({n.zone for n in nodes})
        # One extra trailing entry so that zone_of[EMPTY] is the sentinel -1.
        self.zone_of = np.array([zone_names.index(n.zone) for n in nodes] + [-1], dtype=np.int64)
        self.zone_count = len(zone_names)
        self.cap = zone_cap(replicas, np.bincount(self.zone_of[:-1]).tolist())
        self.targets = np.array(target_assignments(nodes, replicas, part_power))
        self.seed_key = _U64(xxhash.xxh3_64_intdigest(b"cairn-ring-seed:%d" % seed))
        self.node_keys = np.array([xxhash.xxh3_64_intdigest(n.id.encode()) for n in nodes],
                                  dtype=_U64)
        self.table = np.full((self.partitions, replicas), EMPTY, dtype=np.int32)
        # Holders before this build (EMPTY for a fresh ring): a slot whose holder differs
        # from its original is "moved"; moving it again costs nothing more.
        self.original = self.table.copy()
        # Maintained by transfer(): assignments per node, shards per (partition, zone).
        self.held = np.zeros(len(nodes), dtype=np.int64)
        self.zc = np.zeros((self.partitions, self.zone_count), dtype=np.int64)

    # -- shared bookkeeping -----------------------------------------------------------------

    def counts(self) -> np.ndarray:
        held = self.table[self.table != EMPTY]
        return np.bincount(held, minlength=len(self.nodes)).astype(np.int64)

    def zone_counts(self) -> np.ndarray:
        """(partitions, zones) shards per zone in each partition."""
        zones = self.zone_of[self.table]
        return np.stack([(zones == z).sum(axis=1) for z in range(self.zone_count)], axis=1)

    def row_keys(self, rows: np.ndarray) -> np.ndarray:
        return _mix64(rows.astype(_U64) ^ self.seed_key)

    # -- step 1: inherit ---------------------------------------------------------------------

    def start_from(self, previous: Ring) -> None:
        index = {n.id: i for i, n in enumerate(self.nodes)}
        remap = np.array([index.get(n.id, EMPTY) for n in previous.nodes], dtype=np.int32)
        shift = self.partitions.bit_length() - previous.partition_count.bit_length()
        rows = np.arange(self.partitions)
        # A partition is the top bits of the hash: after growing part_power by d, new
        # partition p covers a slice of old partition p >> d and inherits its holders exactly.
        old_rows = rows >> shift if shift >= 0 else rows << -shift
        self.table = remap[previous.table_array()[old_rows]]
        self.original = self.table.copy()

    def clear_over_cap(self) -> None:
        """Empty the fewest slots that bring every partition within the zone cap, taking
        them from the nodes furthest above target."""
        zc = self.zone_counts()
        bad_rows = np.nonzero((zc > self.cap).any(axis=1))[0]
        if not bad_rows.size:
            return
        excess = self.counts() - self.targets
        keys = self.row_keys(bad_rows)
        for p, key in zip(bad_rows.tolist(), keys):
            for z in np.nonzero(zc[p] > self.cap)[0].tolist():
                cols = [j for j in range(self.replicas) if self.zone_of[self.table[p, j]] == z]
                tiebreak = _mix64(self.node_keys[self.table[p, cols]] ^ key)
                cols = [c for _, _, c in sorted(zip(-excess[self.table[p, cols]], tiebreak, cols))]
                for j in cols[:zc[p, z] - self.cap]:
                    excess[self.table[p, j]] -= 1
                    self.table[p, j] = EMPTY

    # -- step 2: fill --------------------------------------------------------------------------

    def fill_empty(self) -> None:
        """Give each empty slot to an eligible node: the zone furthest below its target
        wins, then its node furthest below target (both +- the seeded jitter).

        Within a row, choosing a node only makes it ineligible for the rest of the row and
        leaves the other nodes' deficits unchanged, so one sort of the nodes per row serves
        every free slot of that row.
        """
        rows = np.nonzero((self.table == EMPTY).any(axis=1))[0]
        if not rows.size:
            return
        row_keys = self.row_keys(rows)
        order = np.argsort(row_keys, kind="stable")  # seeded row order, not 0..P-1
        rows, row_keys = rows[order], row_keys[order]
        node_jitter = _unit(_mix64(row_keys[:, None] ^ self.node_keys[None, :])) * _JITTER
        zone_jitter = _unit(_mix64(row_keys[:, None] ^ _mix64(
            np.arange(1, self.zone_count + 1, dtype=_U64))[None, :])) * _JITTER
        excess = (self.counts() - self.targets).tolist()
        zone_of = self.zone_of.tolist()
        zone_excess = [0.0] * self.zone_count
        for i, e in enumerate(excess):
            zone_excess[zone_of[i]] += e
        by_shard = np.stack([np.bincount(col[col != EMPTY], minlength=len(self.nodes))
                             for col in self.table.T], axis=1).tolist()  # [node][shard index]
        cap = self.cap
        table = self.table
        for p, jitter, zjitter in zip(rows.tolist(), node_jitter.tolist(), zone_jitter.tolist()):
            row = table[p].tolist()
            present = set(row)
            in_zone = [0] * self.zone_count
            for i in row:
                if i != EMPTY:
                    in_zone[zone_of[i]] += 1
            # Nodes of each zone, neediest first. Zones are chosen before nodes, like Swift's
            # tiers: a partition where the zone cap leaves a choice is where a zone short of
            # its target can catch up.
            by_zone: list[list[int]] = [[] for _ in range(self.zone_count)]
            for i in sorted(range(len(excess)), key=lambda i: excess[i] + jitter[i]):  # noqa: B023
                if i not in present:
                    by_zone[zone_of[i]].append(i)
            free = [j for j, holder in enumerate(row) if holder == EMPTY]
            while free:
                open_zones = [z for z in range(self.zone_count)
                              if by_zone[z] and in_zone[z] < cap]
                if not open_zones:  # unreachable while zone_cap holds; never a silent bad row
                    raise AssertionError(f"no eligible node for partition {p}")
                z = min(open_zones, key=lambda z: zone_excess[z] + zjitter[z])  # noqa: B023
                i = by_zone[z].pop(0)
                # Which free shard index the node gets does not affect balance or movement;
                # take the one it holds least, so data shards (read first) spread evenly too.
                j = min(free, key=by_shard[i].__getitem__)
                free.remove(j)
                row[j] = i
                present.add(i)
                in_zone[z] += 1
                zone_excess[z] += 1
                excess[i] += 1
                by_shard[i][j] += 1
            table[p] = row

    # -- step 3: transfer ------------------------------------------------------------------

    def transfer(self) -> None:
        """Move single slots from nodes above target to nodes below it until every node is
        within [floor(target), ceil(target)] or no legal move remains.

        Each round tries direct moves (giver -> taker in one partition), then chains for
        what the zone cap blocks (typically: the taker's zone is full in every partition of
        the giver): up to `_MAX_CHAIN` moves through nodes at target, giver -> v in one
        partition, v -> taker in another, leaving v's count unchanged.
        """
        self.held = self.counts()
        self.zc = self.zone_counts()
        low = np.floor(self.targets + 1e-9).astype(np.int64)
        high = np.ceil(self.targets - 1e-9).astype(np.int64)
        targets = self.targets
        phases = (
            # (what a giver may give, what a taker may take); each unit moved end to end
            # strictly lowers the sum of squared deviations from target, so rounds make
            # progress (and _MAX_ROUNDS bounds them regardless).
            (lambda c: c - high, lambda c: low - c),
            (lambda c: c - high, lambda c: np.where(c < targets, high - c, 0)),
            (lambda c: np.where(c > targets, c - low, 0), lambda c: low - c),
        )
        for _ in range(_MAX_ROUNDS):
            # Chains every round, not only once direct moves run dry: a slot that must cross a
            # full zone otherwise trickles over one or two per round.
            if not self._direct_moves(phases) + self._chain_moves(phases):
                return

    def _direct_moves(self, phases) -> int:
        moved = 0
        for give, take in phases:
            takers = _by_amount_desc(take(self.held))
            for o in _by_amount_desc(give(self.held)):
                for u in takers:
                    amount = min(give(self.held)[o], take(self.held)[u])
                    if amount > 0:
                        moved += self._move(o, u, int(amount))
        return moved

    def _chain_moves(self, phases) -> int:
        moved = 0
        for give, take in phases:
            for o in _by_amount_desc(give(self.held)):
                path = self._path(o, lambda b: take(self.held)[b] > 0)
                if path is None:
                    continue
                amount = int(min(give(self.held)[o], take(self.held)[path[-1]]))
                for a, b in zip(path, path[1:]):
                    amount = self._move(a, b, amount)
                    moved += amount
                    if not amount:
                        break
        return moved

    def _path(self, source: int, is_taker) -> list[int] | None:
        """Shortest chain source -> ... -> taker of legal single-slot moves (BFS over nodes)."""
        node_count = len(self.nodes)
        holds = np.zeros((self.partitions, node_count + 1), dtype=bool)  # last column: EMPTY
        holds[np.arange(self.partitions)[:, None], self.table] = True
        zone_open = self.zc < self.cap
        zone_of = self.zone_of[:-1]
        parent = {source: source}
        frontier = [source]
        for _ in range(_MAX_CHAIN):
            reached = []
            for a in frontier:
                rows = np.nonzero(holds[:, a])[0]
                # b can take one of a's slots: b absent there, and b's zone below the cap
                # unless b replaces a zone-mate.
                allowed = ~holds[rows, :node_count] & (zone_open[rows][:, zone_of]
                                                       | (zone_of == zone_of[a]))
                for b in np.nonzero(allowed.any(axis=0))[0].tolist():
                    if b in parent:
                        continue
                    parent[b] = a
                    if is_taker(b):
                        path = [b]
                        while path[-1] != source:
                            path.append(parent[path[-1]])
                        return path[::-1]
                    reached.append(b)
            frontier = reached
        return None

    def _eligible(self, o: int, u: int) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of o's slots that u may take: u not in the row, u's zone below cap."""
        rows, cols = np.nonzero(self.table == o)
        ok = ~(self.table[rows] == u).any(axis=1)
        zu = self.zone_of[u]
        if self.zone_of[o] != zu:
            ok &= self.zc[rows, zu] < self.cap
        return rows[ok], cols[ok]

    def _move(self, o: int, u: int, amount: int) -> int:
        """Hand up to `amount` of o's slots to u; returns how many moved."""
        rows, cols = self._eligible(o, u)
        if rows.size > amount:
            # Cheapest slots first: one going back to its original holder (one move fewer),
            # then one already moved in this build (no extra move), then a slot in the
            # partition with the fewest moved shards (so a rebalance rarely moves two shards
            # of one partition at once); ties by a seeded hash.
            original = self.original[rows, cols]
            extra_moves = np.where(original == u, -1, np.where(original != o, 0, 1))
            moved_in_row = (self.table[rows] != self.original[rows]).sum(axis=1)
            tiebreak = _mix64(self.row_keys(rows) ^ self.node_keys[o] ^ _mix64(self.node_keys[u]))
            pick = np.lexsort((tiebreak, moved_in_row, extra_moves))[:amount]
            rows, cols = rows[pick], cols[pick]
        if not rows.size:
            return 0
        self.table[rows, cols] = u
        zo, zu = self.zone_of[o], self.zone_of[u]
        if zo != zu:
            self.zc[rows, zo] -= 1
            self.zc[rows, zu] += 1
        self.held[o] -= rows.size
        self.held[u] += rows.size
        return int(rows.size)


def _by_amount_desc(amounts: np.ndarray) -> list[int]:
    """Indices with a positive amount, largest first (ties by index: deterministic)."""
    idx = np.nonzero(amounts > 0)[0]
    return idx[np.argsort(-amounts[idx], kind="stable")].tolist()


__all__ = ["build_ring"]
