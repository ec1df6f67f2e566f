#!/usr/bin/env python3
"""Lints and renders Helm charts offline, like `helm lint` and `helm template`, through the Helm SDK
as packaged by helm-python-sdk (import name `helm_python`; no helm binary, no cluster).

    render.py lint CHART [--strict] [--namespace NS] [--set k=v ...] [--values FILE ...]
        prints each finding as `[SEVERITY] path: message`; exits 1 when there is an error
        (with --strict, a warning too), 0 otherwise.
    render.py template CHART [--name RELEASE] [--namespace NS] [--set k=v ...] [--values FILE ...]
        prints the rendered manifests as one YAML stream (`---` and a `# Source:` line before
        each, in path order, without NOTES.txt and partials, as `helm template` does); when
        the values fail the chart's values.schema.json or a template fails, prints the error on
        stderr and exits 1.

Values compose as on the helm command line: the chart's defaults, then each --values file in
order, then each --set in order (`--set` syntax: a=1,b.c=x, escape a literal comma as `\\,`).

The test environment installs the package into target/s3env/venv (tests/s3env.sh install).
"""

from __future__ import annotations

import argparse
import posixpath
import sys
from typing import Any

SEVERITIES = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def die(message: str) -> None:
    print(f"render.py: {message}", file=sys.stderr)
    sys.exit(1)


try:
    import helm_python as helm
except ImportError as err:  # pragma: no cover - the environment's fault, said plainly
    die(f"cannot import helm_python ({err}); install it: bash tests/s3env.sh install")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's merge of values layers: maps merge key by key, anything else is replaced."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def user_values(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in args.values:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as err:
            die(f"cannot read values file {path}: {err}")
        values = deep_merge(values, helm.values_from_yaml(text) or {})
    for expression in args.set:
        values = deep_merge(values, helm.parse_set_string(expression))
    return values


def lint(args: argparse.Namespace) -> int:
    values = user_values(args)
    report = helm.lint(
        args.chart,
        values or None,
        strict=args.strict,
        namespace=args.namespace,
    )
    failing = 0
    for message in report.get("messages") or []:
        severity = int(message.get("severity", 0))
        label = SEVERITIES.get(severity, str(severity))
        print(f"[{label}] {message.get('path', '')}: {message.get('error', '')}")
        if severity >= 3 or (args.strict and severity >= 2):
            failing += 1
    for error in report.get("errors") or []:
        print(f"[ERROR] {error}")
        failing += 1
    linted = report.get("total_charts_linted", 0)
    print(f"{linted} chart(s) linted, {'failed' if failing else 'no failures'}")
    return 1 if failing or not linted else 0


def is_manifest(path: str) -> bool:
    """What `helm template` prints: not NOTES.txt, not partials (`_*.tpl`)."""
    name = posixpath.basename(path)
    return name != "NOTES.txt" and not name.startswith("_")


def template(args: argparse.Namespace) -> int:
    values = user_values(args)
    with helm.Chart.load(args.chart) as chart:
        # Chart.render composes the values (defaults + overrides) and validates them against
        # values.schema.json first, as an install does: a refusal is a HelmValuesError.
        manifests = chart.render(
            values,
            name=args.name,
            namespace=args.namespace,
            revision=1,
            is_install=True,
        )
    out = []
    for path in sorted(manifests):
        if not is_manifest(path):
            continue
        body = manifests[path].strip("\n")
        # A template may render to nothing (a disabled object), or to several documents.
        if not body.strip():
            continue
        out.append(f"---\n# Source: {path}\n{body}\n")
    sys.stdout.write("".join(out))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("lint", "template"):
        p = sub.add_parser(name)
        p.add_argument("chart")
        p.add_argument("--namespace", "-n", default="default")
        p.add_argument("--set", action="append", default=[], metavar="K=V")
        p.add_argument("--values", "-f", action="append", default=[], metavar="FILE")
        if name == "lint":
            p.add_argument("--strict", action="store_true", help="fail on warnings too")
        else:
            p.add_argument("--name", default="release-name", help="the release name")
    args = parser.parse_args()
    try:
        return lint(args) if args.command == "lint" else template(args)
    except helm.HelmError as err:
        kind = type(err).__name__
        print(f"render.py: {args.command} {args.chart}: {kind}: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
