"""Agreement with pyvene (optional extra ``causal-compare``; skipped when pyvene is absent)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("pyvene")

from hdsl.causal import pyvene_compat, tasks  # noqa: E402
from hdsl.causal.alignment import Alignment, Site, encode_inputs  # noqa: E402
from hdsl.causal.intervene import Interchanger, readout  # noqa: E402


def test_same_counterfactuals_as_pyvene(tmp_path):
    from hdsl.nn import load_onnx

    task = tasks.heq_task()
    graph = load_onnx(tasks.to_onnx(tasks.train(task, seed=0), tmp_path / "heq.onnx"))
    m = task.model
    for start, stop, part in ((0, 8, 0), (8, 16, 1)):  # the right and the wrong block for WX
        al = Alignment("a", m.name, "net", (("WX", Site("h", start, stop)),))
        x = torch.from_numpy(encode_inputs(m, al, m.enumerate_inputs()))
        ic = Interchanger(graph, al, x)
        g = torch.Generator().manual_seed(part)
        b = torch.randint(0, len(x), (20000,), generator=g)
        s = torch.randint(0, len(x), (20000,), generator=g)
        with torch.no_grad():
            ours = ic.run(b, {"WX": s})
        theirs = pyvene_compat.interchange(graph, "h", [[0, 8], [8, 16]], part, x[b], x[s])
        assert (ours - theirs).abs().max().item() <= 1e-6
        assert torch.equal(readout(ours), readout(theirs))
        # identical IIA on these pairs, and equal to measure_iia's on the same tuples
        inp = m.enumerate_inputs()
        table = m.run(inp)
        y = m.label(m.run({k: v[b.numpy()] for k, v in inp.items()}, {"WX": table["WX"][s.numpy()]}))
        assert (readout(ours).numpy() == y).sum() == (readout(theirs).numpy() == y).sum()
