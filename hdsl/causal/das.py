"""Distributed alignment search: learn a rotation whose first k coordinates carry a variable.

The rotation R is an ``nn.Linear`` under ``torch.nn.utils.parametrizations.orthogonal``;
the splice is ``h' = h_b + R_k^T R_k (h_s - h_b)`` (R_k = first k rows) and R is
trained with cross-entropy against the causal model's counterfactual labels on
*training* pairs. Because a learned map can make almost anything look aligned
(notes, section 1), the result is always reported as learned, with its IIA on
*held-out* pairs drawn disjointly from the training pairs, next to the null
baseline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from hdsl.causal.alignment import Alignment, Rotation, Site, encode_inputs
from hdsl.causal.intervene import Interchanger
from hdsl.causal.model import CausalModel
from hdsl.diagnostics import HdslError


@dataclass(frozen=True)
class DASResult:
    variable: str
    node: str
    k: int
    rotation: Rotation  # orthogonal to float64 precision (polar factor of the learned matrix)
    train_pairs: int
    test_pairs: int
    test_hits: int
    test_effective: int
    test_effective_hits: int
    steps: int
    time_s: float

    @property
    def iia(self) -> float:
        return self.test_hits / self.test_pairs if self.test_pairs else 0.0

    @property
    def iia_eff(self) -> float:
        return self.test_effective_hits / self.test_effective if self.test_effective else 0.0

    @property
    def null(self) -> float:
        return 1 - self.test_effective / self.test_pairs if self.test_pairs else 0.0

    def site(self) -> Site:
        return Site(self.node, 0, self.k, self.rotation)

    def summary(self) -> str:
        return (f"DAS (learned rotation, {self.k} of {self.rotation.dim} dims of {self.node!r}) for {self.variable}: "
                f"held-out IIA {self.iia:.4f} ({self.test_hits}/{self.test_pairs}); on label-changing pairs "
                f"{self.iia_eff:.4f}; null baseline {self.null:.4f}; {self.train_pairs} training pairs, "
                f"{self.steps} steps, {self.time_s:.1f} s")


def _pairs(n: int, count: int, rng):
    """``count`` distinct (base, source) pairs drawn without replacement from the n*n grid."""
    import numpy as np

    total = n * n
    if count >= total:
        idx = rng.permutation(total)
    elif total <= 50_000_000:
        idx = rng.choice(total, size=count, replace=False)
    else:
        idx = np.unique(rng.integers(0, total, size=int(count * 1.1)))[:count]
        rng.shuffle(idx)
    return idx // n, idx % n


def learn_rotation(net, model: CausalModel, variable: str, node: str, k: int, inputs: dict | None = None,
                   train_pairs: int = 20000, test_pairs: int = 20000, steps: int = 1500, batch: int = 512,
                   lr: float = 1e-2, seed: int = 0, encodings=()) -> DASResult:
    """Train on ``train_pairs`` pairs, report IIA on ``test_pairs`` disjoint pairs (one thread: tiny matrices)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _learn(net, model, variable, node, k, inputs, train_pairs, test_pairs, steps, batch, lr, seed,
                      encodings)
    finally:
        torch.set_num_threads(threads)


def _learn(net, model, variable, node, k, inputs, train_pairs, test_pairs, steps, batch, lr, seed,
           encodings) -> DASResult:
    import numpy as np
    import torch
    from torch import nn
    from torch.nn.utils.parametrizations import orthogonal

    if variable not in model.names:
        raise HdslError.single("C401", f"{variable!r} is not a variable of causal model {model.name!r}")
    try:
        net.resolve(node)
    except KeyError:
        raise HdslError.single("C203", f"the network has no node {node!r}",
                               hint="nodes: " + ", ".join(n.name for n in net.nodes)) from None
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    inputs = inputs if inputs is not None else model.enumerate_inputs()
    n = len(next(iter(inputs.values())))
    probe = Alignment("das", model.name, "", ((variable, Site(node, 0, 1)),), tuple(encodings))
    ic = Interchanger(net, probe, encode_inputs(model, probe, inputs))
    width = ic.acts[ic.nodes[0]].shape[1]
    if not 0 < k < width:
        raise HdslError.single("C402", f"DAS needs 0 < k < {width} (the width of {node!r}), got {k}")
    table = model.run(inputs)
    labels = model.label(table)
    b_all, s_all = _pairs(n, train_pairs + test_pairs, rng)
    split = min(train_pairs, len(b_all) // 2)
    tb, ts = b_all[:split], s_all[:split]
    eb, es = b_all[split:split + test_pairs], s_all[split:split + test_pairs]

    def cf_labels(b, s):
        return model.label(model.run({v.name: inputs[v.name][b] for v in model.inputs}, {variable: table[variable][s]}))

    ty = torch.from_numpy(cf_labels(tb, ts).astype(np.int64))
    rot = orthogonal(nn.Linear(width, width, bias=False))
    opt = torch.optim.Adam(rot.parameters(), lr=lr)
    acts = ic.acts[ic.nodes[0]]
    site_node = ic.nodes[0]

    def splice(src_rows):
        def fn(orig):
            shape = orig.shape
            h = orig.reshape(shape[0], -1)
            rk = rot.weight[:k]
            return (h + ((src_rows - h) @ rk.T) @ rk).reshape(shape)
        return fn

    tb_t, ts_t = torch.from_numpy(tb), torch.from_numpy(ts)
    done = 0
    for step in range(steps):
        j = torch.from_numpy(rng.integers(0, len(tb), size=min(batch, len(tb))))
        out = ic.run(tb_t[j], {}, extra={site_node: splice(acts[ts_t[j]])})
        loss = nn.functional.cross_entropy(out, ty[j])
        opt.zero_grad()
        loss.backward()
        opt.step()
        done = step + 1
    with torch.no_grad():
        r = rot.weight.detach().double().numpy()
    u, _, vt = np.linalg.svd(r)
    r = u @ vt  # nearest orthogonal matrix, exact to float64
    rotation = Rotation(tuple(map(tuple, r.tolist())), "das")
    al = Alignment("das", model.name, "", ((variable, Site(node, 0, k, rotation)),), tuple(encodings))
    ic2 = Interchanger(net, al, ic.x)
    hits = eff = eff_hits = 0
    for i in range(0, len(eb), 16384):
        b, s = eb[i:i + 16384], es[i:i + 16384]
        pred = ic2.predict(torch.from_numpy(b), {variable: torch.from_numpy(s)}).numpy()
        y = cf_labels(b, s)
        ok, changed = pred == y, y != labels[b]
        hits += int(ok.sum())
        eff += int(changed.sum())
        eff_hits += int((ok & changed).sum())
    return DASResult(variable, node, k, rotation, len(tb), len(eb), hits, eff, eff_hits, done,
                     time.perf_counter() - t0)


def save_rotation(rotation: Rotation, path) -> None:
    import numpy as np

    np.save(path, np.asarray(rotation.matrix, dtype=np.float64))


def load_rotation(path) -> Rotation:
    import numpy as np

    try:
        r = np.load(path)
    except (OSError, ValueError) as err:
        raise HdslError.single("C403", f"cannot read rotation file {str(path)!r}: {err}", path=str(path)) from None
    if r.ndim != 2:
        raise HdslError.single("C205", f"rotation in {str(path)!r} is not a matrix (shape {r.shape})", path=str(path))
    return Rotation(tuple(map(tuple, r.astype(float).tolist())), str(path))
