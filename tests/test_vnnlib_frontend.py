"""An hspec property exported with write_vnnlib means the same as the published VNN-LIB file."""

from __future__ import annotations

from pathlib import Path

from hdsl.vnnlib import load_vnnlib, parse_vnnlib, write_vnnlib

ACAS = Path(__file__).parent / "data" / "vnncomp" / "acasxu"

SPEC = """
classes advisory = coc weak_left weak_right strong_left strong_right

model acas = onnx "{net}" {{
  input [1, 1, 5]
  outputs advisory
}}

property p1 =
  forall x in box([0.6, -0.5, -0.5, 0.45, -0.5], [0.679857769, 0.5, 0.5, 0.5, -0.45]):
    acas(x)[coc] < 3.991125645861615

property p3 =
  forall x in box([-0.303531156, -0.009549297, 0.493380324, 0.3, 0.3],
                  [-0.298552812, 0.009549297, 0.5, 0.5, 0.5]):
    acas(x)[coc] > acas(x)[weak_left] or acas(x)[coc] > acas(x)[weak_right]
      or acas(x)[coc] > acas(x)[strong_left] or acas(x)[coc] > acas(x)[strong_right]

check p1, p3 timeout 60s
"""


def test_hspec_acas_properties_export_to_the_published_vnnlib(tmp_path):
    from hdsl.check import check_file
    from hdsl.lower import lower

    net = (ACAS / "onnx" / "ACASXU_run2a_1_1_batch_2000.onnx").resolve()
    path = tmp_path / "acas.hspec"
    path.write_text(SPEC.format(net=net.as_posix()))
    queries = {q.property: q for c in lower(check_file(path)).checks for q in c.items}
    for name, published in (("p1", "prop_1.vnnlib"), ("p3", "prop_3.vnnlib")):
        exported = parse_vnnlib(write_vnnlib(queries[name], tmp_path / f"{name}.vnnlib"), f"{name}.vnnlib")
        reference = load_vnnlib(ACAS / "vnnlib" / published)
        assert exported.region == reference.region, name
        assert exported.spec == reference.spec, name
        assert (exported.num_inputs, exported.num_outputs) == (5, 5)
