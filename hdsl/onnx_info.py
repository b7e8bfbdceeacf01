"""What the checker needs from an ONNX file: its input dimensions and output size."""

from __future__ import annotations


def strip_batch(dims: tuple[int | None, ...]) -> tuple[int, ...] | None:
    if len(dims) > 1 and (dims[0] is None or dims[0] == 1):
        dims = dims[1:]
    return None if any(d is None for d in dims) else tuple(dims)


def shapes_match(declared: tuple[int, ...], onnx_dims: tuple[int | None, ...]) -> bool:
    for dims in (onnx_dims, onnx_dims[1:]):
        if len(dims) == len(declared) and all(d is None or d == s for d, s in zip(dims, declared)):
            return True
    return False


def read_onnx(path: str) -> tuple[tuple[int | None, ...] | None, int | None]:
    """(input dims including the batch dimension, output size) of an ONNX file.

    Raises ``ValueError`` with a readable message for a file that is not a
    one-input ONNX model. Only the graph's declared shapes are read (cheap:
    no weights are interpreted); unknown dimensions are None.
    """
    try:
        import onnx

        model = onnx.load(path, load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf raises many types
        raise ValueError(f"not a readable ONNX model: {exc}") from None
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(graph.output) < 1:
        raise ValueError(f"expected one input and one output, found {len(inputs)} and {len(graph.output)}")

    def dims(value_info) -> tuple[int | None, ...] | None:
        t = value_info.type.tensor_type
        if not t.HasField("shape"):
            return None
        return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in t.shape.dim)

    in_dims = dims(inputs[0])
    out_dims = dims(graph.output[0])
    out_size = None
    if out_dims is not None:
        rest = out_dims[1:] if len(out_dims) > 1 else out_dims
        if all(d is not None for d in rest):
            out_size = 1
            for d in rest:
                out_size *= d
    return in_dims, out_size
