"""Run the same interchange interventions with pyvene (optional; for agreement tests and benchmarks).

pyvene needs three workarounds for a plain ``nn.Module`` (notes, section 2): a
``config`` attribute, a ``device`` attribute, and registering the class in its
type mappings. Sites are reached as ``"<module>.output"``; inputs are shaped
``(batch, 1, d)`` so the single position is unit 0.
"""

from __future__ import annotations


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyvene") is not None


def torch_module(graph):
    """An ``nn.Module`` made of one submodule per graph node (linear/relu MLPs only)."""
    import torch
    from torch import nn
    from transformers import PretrainedConfig

    class Step(nn.Module):
        def __init__(self, node):
            super().__init__()
            self.op = node.op
            if node.op == "linear":
                self.lin = nn.Linear(node.params["weight"].shape[1], node.params["weight"].shape[0])
                with torch.no_grad():
                    self.lin.weight.copy_(node.params["weight"])
                    self.lin.bias.copy_(node.params["bias"])

        def forward(self, x):
            return self.lin(x) if self.op == "linear" else torch.relu(x)

    class GraphMLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = PretrainedConfig()
            self.names = [n.name for n in graph.nodes[1:]]
            for n in graph.nodes[1:]:
                if n.op not in ("linear", "relu"):
                    raise ValueError(f"pyvene harness supports linear/relu graphs, not {n.op}")
                self.add_module(n.name, Step(n))

        @property
        def device(self):
            return torch.device("cpu")

        def forward(self, inputs_embeds):
            h = inputs_embeds
            for name in self.names:
                h = getattr(self, name)(h)
            return (h,)

    import pyvene as pv

    pv.type_to_module_mapping[GraphMLP] = {}
    pv.type_to_dimension_mapping[GraphMLP] = {}
    return GraphMLP()


def interchange(graph, node: str, partition: list[list[int]], subspace: int, base, source, batch_size: int = 8192):
    """Counterfactual logits with pyvene: base rows, with ``partition[subspace]`` of ``node`` from source rows."""
    import pyvene as pv
    import torch

    module = torch_module(graph).eval()
    config = pv.IntervenableConfig([{
        "component": f"{node}.output", "unit": "pos", "max_number_of_units": 1,
        "intervention_type": pv.VanillaIntervention, "subspace_partition": partition,
    }])
    im = pv.IntervenableModel(config, module, use_fast=True)
    im.disable_model_gradients()
    outs = []
    with torch.no_grad():
        for i in range(0, len(base), batch_size):
            b = base[i:i + batch_size].unsqueeze(1)
            s = source[i:i + batch_size].unsqueeze(1)
            n = len(b)
            _, cf = im({"inputs_embeds": b}, [{"inputs_embeds": s}],
                       {"sources->base": ([[[0]] * n], [[[0]] * n])}, subspaces=[[[subspace]] * n])
            outs.append(cf[0].reshape(n, -1))
    return torch.cat(outs)
