"""The curriculum state a DataModule serves from, and the batch sampler that obeys it.

The state has three knobs: ``max_length`` (use the first L steps of each sequence),
``classes`` (allowed digits) and ``num_sequences`` (the first N training sequences of those
classes). Curriculum callbacks change it while training runs; the sampler reads it at every
batch, so a change takes effect from the next batch drawn.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from isl.core.checks import positive_int

log = logging.getLogger(__name__)

ALL_CLASSES = tuple(range(10))
BATCH_BY = ("sequences", "points")
BUCKET_SORTS = ("stratified", "length")
_AHEAD_LIMIT = 8  # Lightning fetches one batch ahead; more are not ahead but used elsewhere
KNOBS = ("max_length", "classes", "num_sequences")


def _checked(name: str, value):
    if name == "classes":
        value = tuple(sorted({int(c) for c in value}))
        if not value or any(c not in ALL_CLASSES for c in value):
            raise ValueError(f"curriculum classes must be a non-empty subset of 0-9, got {value!r}")
        return value
    return positive_int(f"curriculum {name}", value, none="None (all)")


@dataclass
class CurriculumState:
    """Assigning a knob validates it and, if the value changes, bumps ``version``."""

    max_length: int | None = None            # None: full length
    classes: tuple[int, ...] = ALL_CLASSES
    num_sequences: int | None = None         # None: every training sequence
    version: int = field(default=0, compare=False)

    def __setattr__(self, name, value):
        if name in KNOBS:
            value = _checked(name, value)
            if name in self.__dict__ and self.__dict__[name] != value:
                self.__dict__["version"] += 1
        object.__setattr__(self, name, value)

    @property
    def selection(self) -> tuple:
        """What decides which sequences are eligible (not how much of each is used)."""
        return self.classes, self.num_sequences

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key in KNOBS:
            setattr(self, key, state[key])
        self.version = state["version"]


def check_batching(by: str, size: int, bucket: int = 1, bucket_sort: str = "stratified") -> None:
    if by not in BATCH_BY:
        raise ValueError(f"batching.by must be one of {BATCH_BY}, got {by!r}")
    if bucket_sort not in BUCKET_SORTS:
        raise ValueError(f"batching.bucket_sort must be one of {BUCKET_SORTS}, got {bucket_sort!r}")
    positive_int("batching.size", size)
    positive_int("batching.bucket", bucket)


class CurriculumBatchSampler:
    """An endless, seeded stream of batches of sequence indices under a CurriculumState.

    Each pass visits every eligible sequence exactly once in a fresh random order; nothing is
    dropped (a pass may end on smaller batches). ``by="sequences"`` puts ``size`` sequences in
    a batch; ``by="points"`` as many as fit ``size`` (curriculum-truncated) points, never fewer
    than one. A change of the eligible set starts a new pass. Training length is a budget of
    points, not epochs, hence endless.

    Several processes (DDP): every rank runs the same sampler and takes its share of each draw
    of ``world`` consecutive batches, so ranks see different data and the same curriculum. The
    stream of batches does not depend on ``world``: a run resumed on another number of
    processes deals the same stream out anew.

    Padding: the next ``bucket`` batches' worth of sequences are drawn together, sorted, cut
    into batches and served in random order (``bucket=1``: plain random batches). The pool is
    re-cut when the state changes. Length tracks the digit (ones ~20 points, eights ~53), so
    sorting by length alone (``bucket_sort="length"``) makes batches of one or two classes, and
    only while sequences are whole: a curriculum that truncates them gets random batches, which
    confounds any comparison with one that does not. ``"stratified"`` sorts by a sequence's
    length rank *within its class*: each batch then holds the pool's class mix (the most common
    class's share stays near its share of the data) and sequences from the same length quantile
    of every class, which still spares a third of the padding of random batches.
    """

    def __init__(self, lengths: np.ndarray, labels: np.ndarray, state: CurriculumState,
                 by: str = "sequences", size: int = 50, bucket: int = 1,
                 bucket_sort: str = "stratified", seed: int = 0, rank: int = 0, world: int = 1):
        check_batching(by, size, bucket, bucket_sort)
        self.rank, self.world = rank, world
        self.draws = 0                            # draws of `world` batches so far
        # draw -> (version, [(pass, batch), ...]) for draws handed out and neither trained on
        # nor given back yet: what Lightning has fetched ahead.
        self.unused: dict[int, tuple] = {}
        self.served = (0, 0, -1)                  # (draw, version, pass) of the shard last handed out
        self.pending: list[tuple] = []            # (version, pass, batch) to serve first after a resume
        self.lengths, self.labels, self.state = lengths, labels, state
        self.by, self.size, self.bucket, self.bucket_sort, self.seed = by, size, bucket, bucket_sort, seed
        self.epoch = -1
        self.selection = None
        self.queue = np.zeros(0, dtype=np.int64)  # what remains of this pass, in order
        self.pool: list[np.ndarray] = []          # batches cut but not served yet
        self.pool_version = None
        self.pools = 0                            # pools cut in this pass: seeds their order

    def eligible(self) -> np.ndarray:
        idx = np.flatnonzero(np.isin(self.labels, self.state.classes))
        if len(idx) == 0:
            raise ValueError(f"no training sequence has a class in {self.state.classes}")
        return idx[:self.state.num_sequences]

    def _new_pass(self) -> None:
        self.epoch += 1
        self.selection = self.state.selection
        self.queue = np.random.default_rng((self.seed, self.epoch)).permutation(self.eligible())
        self.pool, self.pools = [], 0

    def truncated_lengths(self, indices: np.ndarray) -> np.ndarray:
        if self.state.max_length is None:
            return self.lengths[indices]
        return np.minimum(self.lengths[indices], self.state.max_length)

    def _cut_pool(self) -> None:
        if self.by == "sequences":
            n = self.bucket * self.size
        else:
            n = max(int((np.cumsum(self.truncated_lengths(self.queue[:self.bucket * self.size]))
                         <= self.bucket * self.size).sum()), 1)
        taken, self.queue = self.queue[:n], self.queue[n:]
        lengths = self.truncated_lengths(taken)
        order = self._bucket_order(taken, lengths)
        taken, lengths = taken[order], lengths[order]
        if self.by == "sequences":
            cuts = np.arange(self.size, len(taken), self.size)
        else:  # greedy packing of the sorted lengths
            cuts, filled = [], 0
            for i, length in enumerate(lengths.tolist()):
                if filled and filled + length > self.size:
                    cuts.append(i)
                    filled = 0
                filled += length
        batches = np.split(taken, cuts)
        rng = np.random.default_rng((self.seed, self.epoch, self.pools))
        self.pool = [batches[i] for i in rng.permutation(len(batches))]
        self.pool_version, self.pools = self.state.version, self.pools + 1

    def _bucket_order(self, taken: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The order a pool is cut in: by length, or by length quantile within each class."""
        if self.bucket_sort == "length":
            return np.argsort(lengths, kind="stable")
        labels = self.labels[taken]
        quantile = np.empty(len(taken))
        for c in np.unique(labels):
            members = np.flatnonzero(labels == c)
            rank = np.argsort(np.argsort(lengths[members], kind="stable"), kind="stable")
            quantile[members] = (rank + 0.5) / len(members)
        return np.argsort(quantile, kind="stable")  # ties keep the pool's random order

    def next_batch(self) -> np.ndarray:
        if self.selection != self.state.selection or (len(self.queue) == 0 and not self.pool):
            self._new_pass()
        if self.pool and self.pool_version != self.state.version:
            self.give_back(np.concatenate(self.pool), self.epoch)  # re-cut under the new state
            self.pool = []
        if not self.pool:
            self._cut_pool()
        return self.pool.pop()

    def give_back(self, indices: np.ndarray, epoch: int) -> None:
        """Return indices drawn in pass ``epoch`` but not used, so no sequence is skipped in
        this pass. A finished pass takes nothing back."""
        if epoch == self.epoch:
            self.queue = np.concatenate([np.asarray(indices, dtype=np.int64), self.queue])

    def next_shard(self) -> np.ndarray:
        """This rank's batch of the next draw of ``world`` batches (``self.draws`` numbers it)."""
        shards, versions = [], []
        for _ in range(self.world):
            if self.pending:  # drawn before a checkpoint, not trained on yet: served first
                version, epoch, batch = self.pending.pop(0)
            else:
                version, batch = self.state.version, self.next_batch()
                epoch = self.epoch
            shards.append((epoch, batch))  # with the pass it came from
            versions.append(version)
        self.draws += 1
        draw, version = self.draws, min(versions)  # one stale batch makes the draw stale
        self.unused[draw] = (version, shards)
        if len(self.unused) > _AHEAD_LIMIT:  # served outside Lightning, nobody marks them trained
            self.unused.pop(next(iter(self.unused)))
        self.served = (draw, version, shards[self.rank][0])
        return shards[self.rank][1]

    def give_back_draw(self, draw: int) -> None:
        """Return a whole draw that was fetched ahead of a curriculum change; every rank gives
        back the same draw, so the replicas stay identical."""
        for epoch, batch in reversed(self.unused.pop(draw, (None, []))[1]):
            self.give_back(batch, epoch)

    def trained(self, draw: int) -> None:
        """The batches of ``draw`` went into training: they are no longer ahead."""
        self.unused.pop(draw, None)

    def __iter__(self):
        while True:
            yield self.next_shard()

    def state_dict(self) -> dict:
        """The sampler's state, with the draws Lightning fetched ahead but did not train on: a
        run resumed from it is served those first, and sees exactly the batches an
        uninterrupted run would."""
        ahead = [[d, v, [[e, b.tolist()] for e, b in shards]] for d, (v, shards) in sorted(self.unused.items())]
        return {"epoch": self.epoch, "draws": self.draws, "world": self.world, "queue": self.queue.tolist(),
                "pool": [b.tolist() for b in self.pool],
                "pool_version": self.pool_version, "pools": self.pools,
                "selection": None if self.selection is None else [list(self.selection[0]),
                                                                    self.selection[1]],
                "ahead": ahead}

    def load_state_dict(self, state: dict) -> None:
        """Resume the stream where ``state`` left it, on this sampler's number of processes: the
        batches fetched ahead are served first, dealt to the ranks in the order they were drawn."""
        self.epoch, self.pools, self.pool_version = state["epoch"], state["pools"], state["pool_version"]
        ahead = state.get("ahead", [])
        self.draws = state["draws"] - len(ahead)  # the draws fetched ahead are numbered again
        self.pending = [(v, e, np.asarray(b, dtype=np.int64)) for _, v, shards in ahead for e, b in shards]
        saved_world = state.get("world", self.world)
        if saved_world != self.world and self.rank == 0:
            log.info("Saved on %d process(es), resumed on %d: the same stream of batches is dealt to "
                     "%d rank(s) from here (the %d fetched ahead first); curriculum, points and "
                     "metrics count over all processes and carry over", saved_world, self.world,
                     self.world, len(self.pending))
        self.unused = {}
        self.queue = np.asarray(state["queue"], dtype=np.int64)
        self.pool = [np.asarray(b, dtype=np.int64) for b in state["pool"]]
        sel = state["selection"]
        self.selection = None if sel is None else (tuple(sel[0]), sel[1])
