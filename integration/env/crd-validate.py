#!/usr/bin/env python3
"""Validate custom resources against the openAPIV3Schema of their CustomResourceDefinition,
strictly (as `kubectl apply --validate=strict` does): unknown fields are errors, unless the
schema says x-kubernetes-preserve-unknown-fields. Needs PyYAML and jsonschema (both come with
kubernetes-validate in the test venv).

usage: crd-validate.py CRD.yaml[,CRD.yaml...] MANIFEST.yaml...
Every document of MANIFEST whose apiVersion/kind one of the CRDs defines is validated;
prints one line per object, exits 1 on the first file with errors, 2 when no object matched.
"""
import sys

import jsonschema
import yaml


def strict(schema):
    """Copy of an OpenAPI v3 structural schema with additionalProperties: false wherever
    properties are listed and unknown fields are not preserved."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if schema.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    return out


def main():
    schemas = {}
    for path in sys.argv[1].split(","):
        for doc in yaml.safe_load_all(open(path)):
            if not doc or doc.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = doc["spec"]["group"], doc["spec"]["names"]["kind"]
            for v in doc["spec"]["versions"]:
                if v.get("served"):
                    s = strict(v["schema"]["openAPIV3Schema"])
                    # metadata is checked by the API server itself: a name is required
                    s.setdefault("required", [])
                    schemas[(f"{group}/{v['name']}", kind)] = s
    seen = 0
    failed = False
    for path in sys.argv[2:]:
        for doc in yaml.safe_load_all(open(path)):
            if not doc:
                continue
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key not in schemas:
                continue
            seen += 1
            name = f"{path}: {key[1]} {doc.get('metadata', {}).get('name')}"
            if not doc.get("metadata", {}).get("name"):
                print(f"ERROR {name}: metadata.name missing")
                failed = True
                continue
            v = jsonschema.Draft7Validator(schemas[key])
            errors = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
            for e in errors:
                where = "/".join(str(p) for p in e.absolute_path)
                print(f"ERROR {name}: {where}: {e.message}")
            if errors:
                failed = True
            else:
                print(f"OK {name}")
    if failed:
        sys.exit(1)
    if seen == 0:
        print("no custom resource of the given CRDs found")
        sys.exit(2)


if __name__ == "__main__":
    main()
