"""JUnit XML for CI systems: a test suite per property, a test case per item.

falsified/fail -> <failure>, error -> <error>, unknown/timeout/inconclusive -> <skipped>.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from hdsl.report.results import PropertySummary, item_id, outcome


def junit_xml(spec_path: str, summaries: list[PropertySummary]) -> str:
    root = ET.Element("testsuites", name=f"hdsl {spec_path}")
    total = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for s in summaries:
        counts = {"tests": len(s.results), "failures": 0, "errors": 0, "skipped": 0}
        suite = ET.SubElement(root, "testsuite", name=s.name, time=f"{s.time_s:.3f}")
        for r in s.results:
            case = ET.SubElement(suite, "testcase", classname=f"{spec_path}.{s.name}", name=item_id(r),
                                 time=f"{r.time_s:.3f}")
            kind = outcome(r)
            message = f"{kind}: {r.message}" if r.message else kind
            if kind in ("falsified", "fail"):
                counts["failures"] += 1
                ET.SubElement(case, "failure", message=message, type=kind).text = _detail(r)
            elif kind == "error":
                counts["errors"] += 1
                ET.SubElement(case, "error", message=message, type=kind)
            elif kind not in ("proved", "pass"):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", message=message)
        for k, v in counts.items():
            suite.set(k, str(v))
            total[k] += v
    for k, v in total.items():
        root.set(k, str(v))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _detail(r) -> str:
    ce = getattr(r, "counterexample", None)
    if ce is None:
        return getattr(r, "message", "") or ""
    return f"counterexample margin {ce.margin} (replayed with {ce.replayed_with}); outputs {list(ce.y)}"
