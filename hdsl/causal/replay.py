"""Replay interchange interventions on onnxruntime (the real model), independently of hdsl's graph.

The ONNX file is cut in two with ``onnx.utils.Extractor``: the part from the
input to the aligned tensors (plus the output), and the part from the input and
the aligned tensors to the output. The splice is done in numpy between the two
sessions. Used to confirm a sample of the tuples an IIA run scored (the failing
ones first): an IIA failure is then backed by the real model, not only by our
executor.
"""

from __future__ import annotations

from hdsl.causal.alignment import Alignment


class OrtInterchange:
    def __init__(self, path: str, nodes: tuple[str, ...]):
        import onnx
        import onnxruntime as ort
        from onnx.utils import Extractor

        model = onnx.shape_inference.infer_shapes(onnx.load(path))
        inits = {i.name for i in model.graph.initializer}
        inputs = [i.name for i in model.graph.input if i.name not in inits]
        if len(inputs) != 1 or len(model.graph.output) != 1:
            raise ValueError("replay needs exactly one input and one output")
        self.input, self.output = inputs[0], model.graph.output[0].name
        self.nodes = nodes
        ex = Extractor(model)
        opts = dict(providers=["CPUExecutionProvider"])
        self.first = ort.InferenceSession(ex.extract_model([self.input], list(nodes) + [self.output])
                                          .SerializeToString(), **opts)
        rest = ex.extract_model([self.input] + list(nodes), [self.output])
        self.rest = ort.InferenceSession(rest.SerializeToString(), **opts)
        self.rest_inputs = {i.name for i in self.rest.get_inputs()}

    def acts(self, x):
        outs = self.first.run(None, {self.input: x})
        return dict(zip(list(self.nodes) + [self.output], outs))

    def run(self, x, values: dict):
        feed = {k: v for k, v in {self.input: x, **values}.items() if k in self.rest_inputs}
        return self.rest.run(None, feed)[0]


def replay_tuples(path: str, alignment: Alignment, x, groups, tuples):
    """onnxruntime predictions for tuples ``(b, s_1, ..., s_k)`` (rows of ``x``), neuron or rotated sites."""
    import numpy as np

    nodes = tuple(dict.fromkeys(s.node for _, s in alignment.sites))
    ri = OrtInterchange(path, nodes)
    t = np.asarray(tuples, dtype=np.int64)
    base = ri.acts(x[t[:, 0]])
    srcs = [ri.acts(x[t[:, g + 1]]) for g in range(len(groups))]
    spliced = {}
    for node in nodes:
        h = base[node]
        shape = h.shape
        hb = h.reshape(len(h), -1)
        out = hb.copy()
        for g, grp in enumerate(groups):
            hs = srcs[g][node].reshape(len(h), -1)
            for var in grp:
                site = alignment.site_of(var)
                if site is None or site.node != node:
                    continue
                if site.rotation is None:
                    out[:, site.start:site.stop] = hs[:, site.start:site.stop]
                else:
                    rows = np.asarray(site.rotation.matrix, dtype=np.float32)[site.start:site.stop]
                    out = out + ((hs - hb) @ rows.T) @ rows
        spliced[node] = out.reshape(shape).astype(np.float32)
    y = ri.run(x[t[:, 0]], spliced).reshape(len(t), -1)
    return (y[:, 0] > 0).astype(np.int64) if y.shape[1] == 1 else y.argmax(1)
