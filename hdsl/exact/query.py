"""From an IR ``Query`` to what the exact and branch-and-bound searches need.

The network becomes a ``PwlNet`` in raw input space (normalisation prepended),
the spec becomes matrix rows, the region becomes boxes, and replay goes
through ``hdsl.replay`` (onnxruntime on the original file, point rounded to
float32 inside the box that contains it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from hdsl import ir
from hdsl.exact.net import PwlNet, load_network
from hdsl.exact.spec import SpecRows, spec_rows
from hdsl.results import Counterexample


@lru_cache(maxsize=16)
def _cached_net(path: str, mean, std, shape, stamp) -> PwlNet:
    return load_network(ir.Network("net", path, tuple(shape), mean=mean, std=std))


def file_stamp(path: str) -> str:
    """The file's content digest, so caches notice a rewritten model (see ``hdsl.files``)."""
    from hdsl.files import content_digest

    return content_digest(path)


def network_of(network: ir.Network) -> PwlNet:
    path = str(network.path)
    return _cached_net(path, network.mean, network.std, tuple(network.input_shape), file_stamp(path))


@dataclass
class Prepared:
    net: PwlNet
    rows: SpecRows
    boxes: list[tuple[np.ndarray, np.ndarray]]
    query: ir.Query

    @property
    def arithmetic(self) -> str:
        return self.query.options.arithmetic

    def replay(self, x32: np.ndarray) -> Counterexample | None:
        """Confirm a float32 candidate on the real model (None unless inside a box and violating, in the
        query's arithmetic)."""
        from hdsl.replay import replay

        x = np.asarray(x32, dtype=np.float32).reshape(-1)
        xd = x.astype(np.float64)
        for lo, hi in self.boxes:
            if np.all(xd >= lo) and np.all(xd <= hi):
                return replay(self.query.network, self.query.spec, (lo, hi), x,
                              self.net.forward(xd.reshape(1, -1), dtype=np.float32), self.arithmetic)
        return None


def prepare(query: ir.Query) -> Prepared:
    from hdsl.regions import boxes

    net = network_of(query.network)
    return Prepared(net, spec_rows(query.spec, net.output_size), boxes(query.region, query.network), query)
