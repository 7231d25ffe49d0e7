"""Validate every object of a multi-document YAML file against the strict schemas of
several Kubernetes versions in one process (the CLI's per-run start-up, times nine
versions, is most of its cost). Run with the tools venv's python (scripts/k8s-tools.sh):

    .cache/k8s-tools/bin/python tests/k8s/kube_validate.py built.yaml 1.29 1.30 ...

Prints one line per failure and a summary; exits 1 when anything fails.
"""

from __future__ import annotations

import sys

import kubernetes_validate
import yaml


def main(path: str, versions: list[str]) -> int:
    with open(path, encoding="utf-8") as handle:
        docs = [doc for doc in yaml.safe_load_all(handle) if doc]
    failures = 0
    for version in versions:
        for doc in docs:
            name = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                failures += 1
                print(f"FAIL {version} {name}: {exc.message} at {list(exc.path)}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                failures += 1
                print(f"NOSCHEMA {version} {name}: {exc}")
    print(f"validated {len(docs)} objects x {len(versions)} versions: {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
