"""The template combinations the deploy checks lint and scan (scripts/check-deploy.sh).

Each variant is template.yaml with some parameters' defaults changed, so every linter and
scanner sees that combination's conditions as a deployment would:

    python scripts/template-variants.py list
    python scripts/template-variants.py write VARIANT OUT.json
    python scripts/template-variants.py expand IN.json OUT.json   # the SAM transform's output

Runs with the deploy venv's Python (cfn-lint's YAML loader, SAM's translator).
"""

import json
import sys

# A multi-Region key's ARN, as a replica table needs (KmsKey's description).
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab"

VARIANTS = {
    "default": {},
    "provisioned": {"CapacityMode": "PROVISIONED"},
    "replicas": {"ReplicaRegions": "eu-west-1,us-west-2"},
    "key-created": {"KmsKey": "create"},
    "key-given-with-replicas": {"KmsKey": KEY_ARN, "ReplicaRegions": "eu-west-1"},
    "backups-and-access-logs": {"Backups": "true", "AccessLogging": "true"},
    "everything": {
        "Stage": "prod",
        "CapacityMode": "PROVISIONED",
        "ReplicaRegions": "eu-west-1,us-west-2",
        "KmsKey": KEY_ARN,
        "Backups": "true",
        "AccessLogging": "true",
        "AuthMode": "JWT",
        "JwtIssuer": "https://issuer.example.com",
        "JwtAudience": "wf",
        "AlarmEmail": "ops@example.com",
    },
}


class NoManagedPolicies:
    """The template names no SAM policy templates or managed policies by name."""

    def load(self):
        return {}


def write(name, out):
    from cfnlint.decode import cfn_yaml

    template = json.loads(json.dumps(cfn_yaml.load("template.yaml")))
    for parameter, value in VARIANTS[name].items():
        template["Parameters"][parameter]["Default"] = value
    with open(out, "w") as f:
        json.dump(template, f, indent=1)


def expand(source, out):
    from samtranslator.public.exceptions import InvalidDocumentException
    from samtranslator.translator.transform import transform

    with open(source) as f:
        template = json.load(f)
    # As `sam validate` does: a local CodeUri stands for the artifact sam deploy uploads.
    for resource in template["Resources"].values():
        if resource.get("Type") == "AWS::Serverless::Function":
            uri = resource["Properties"]["CodeUri"]
            resource["Properties"]["CodeUri"] = f"s3://artifacts/{uri}"
    try:
        expanded = transform(template, {}, NoManagedPolicies())
    except InvalidDocumentException as e:
        sys.exit("SAM transform failed: " + "; ".join(str(c) for c in e.causes))
    with open(out, "w") as f:
        json.dump(expanded, f, indent=1)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "list":
        print("\n".join(VARIANTS))
    elif command == "write":
        write(*args)
    elif command == "expand":
        expand(*args)
    else:
        sys.exit(f"unknown command {command}")
