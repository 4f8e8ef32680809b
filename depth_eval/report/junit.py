"""``--junit FILE.xml``: the gate's verdict as JUnit XML, for the test reporters of GitLab,
Jenkins and GitHub.

One ``<testsuite>`` per kind of check: ``evaluation`` has a testcase per snapshot (an error
when it was skipped) and per skipped image (an error: the run's means leave it out); ``gate``
has a testcase per (baseline snapshot, rule), failed with the message the gate prints, and per
(new snapshot, rule), skipped: nothing to compare.  So a file with failures goes with exit
status 3, one with errors (and no failures) with 1.
"""

from __future__ import annotations

from xml.etree import ElementTree

from depth_eval.console import one_line
from depth_eval.report.per_image import OwnFile
from depth_eval.report.reporters import Reporter

# The first line the tool writes: how an earlier file of its own is recognised.
HEADER = b'<?xml version="1.0" encoding="utf-8"?><!-- depth_eval gate -->'
JUNIT_FILE = OwnFile("--junit", ".xml", HEADER, None, "JUnit XML")
# Test names are "<snapshot>: <rule>"; classname groups them as test reporters show them.
CLASS_PREFIX = "depth_eval"


class JunitReporter(Reporter):
    """The file ``--junit`` names."""

    def wanted(self, run) -> bool:
        return run.settings.outputs.junit is not None

    def report(self, run, console) -> list[str]:
        outputs = run.settings.outputs
        return JUNIT_FILE.write(outputs.junit, outputs.out_dir, junit_xml(run))


def _case(suite, classname: str, name: str, seconds: float = 0.0):
    return ElementTree.SubElement(suite, "testcase", classname=one_line(classname),
                                  name=one_line(name), time=f"{seconds:.3f}")


def _outcome(case, kind: str, message: str, text: str | None = None) -> None:
    element = ElementTree.SubElement(case, kind, message=one_line(message), type=kind)
    if text:
        element.text = one_line(text)


def junit_xml(run) -> bytes:
    """The JUnit document of a finished run."""
    entries, verdict, settings = run.tally.entries, run.verdict, run.settings
    root = ElementTree.Element("testsuites", name=CLASS_PREFIX)
    evaluation = ElementTree.SubElement(root, "testsuite", name="evaluation")
    for name, entry in entries.items():
        case = _case(evaluation, f"{CLASS_PREFIX}.snapshot", name, entry.get("seconds", 0.0))
        if entry.get("status") != "evaluated":
            _outcome(case, "error", f"snapshot {name} skipped: {entry.get('error', 'not evaluated')}")
        else:
            ElementTree.SubElement(case, "system-out").text = one_line(
                f"evaluated on {entry.get('images_evaluated', 0)} images")
    for image, reason in run.tally.bad_images.items():
        case = _case(evaluation, f"{CLASS_PREFIX}.image", image)
        _outcome(case, "error", f"image skipped: {reason}")
    gate = ElementTree.SubElement(root, "testsuite", name="gate")
    for check in verdict.checks:
        case = _case(gate, f"{CLASS_PREFIX}.gate.{check.snapshot}",
                     f"{check.snapshot}: {check.rule.text}")
        sureness = ""
        if check.interval is not None:
            unit = "%" if check.rule.relative else ""
            sureness = (f"paired interval of the change [{check.interval[0]:+.4g}{unit}, "
                        f"{check.interval[1]:+.4g}{unit}], Wilcoxon p={check.p_value:.3g}")
        if check.fails:
            _outcome(case, "failure", f"gate: snapshot {check.snapshot} broke "
                                      f"'{check.rule.text}': {check.violation.reason}", sureness)
        elif check.violation is not None:
            ElementTree.SubElement(case, "system-out").text = one_line(
                f"within the noise: {check.violation.reason}; {sureness}")
        elif sureness:
            ElementTree.SubElement(case, "system-out").text = one_line(sureness)
    for name in verdict.new:
        for rule in settings.gate.rules:
            case = _case(gate, f"{CLASS_PREFIX}.gate.{name}", f"{name}: {rule.text}")
            _outcome(case, "skipped", f"snapshot {name} is new (no evaluated row in the "
                                      "baseline): nothing to compare, not checked")
    for suite in (evaluation, gate):
        cases = suite.findall("testcase")
        counts = {kind: sum(1 for c in cases if c.find(kind) is not None)
                  for kind in ("failure", "error", "skipped")}
        suite.set("tests", str(len(cases)))
        suite.set("failures", str(counts["failure"]))
        suite.set("errors", str(counts["error"]))
        suite.set("skipped", str(counts["skipped"]))
    for attribute in ("tests", "failures", "errors", "skipped"):
        root.set(attribute, str(sum(int(s.get(attribute)) for s in (evaluation, gate))))
    ElementTree.indent(root)
    return HEADER + b"\n" + ElementTree.tostring(root, encoding="unicode").encode("utf-8") + b"\n"
