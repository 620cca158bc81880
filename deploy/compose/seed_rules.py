"""Seed a job's live rules in etcd from its spec, once: the docker-compose demo's ``rules`` service.

Usage::

    python deploy/compose/seed_rules.py --spec SPEC --rules-from etcd://HOST:PORT/winnow/<tenant>/jobs/<job>/rules/

Writes every rule of the spec under the prefix, one key per rule named after it and valued
``{"window", "when", "action"}`` (what ``winnow worker --rules-from`` reads), in one transaction, and only
when the prefix holds no rule yet: rules changed with etcdctl survive a restart of the stack.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from jobs.live_rules import RulesLocation, build_rules
from jobs.spec import JobSpec, load_job_spec
from windows.errors import WinnowError


def rule_documents(spec: JobSpec) -> dict[str, bytes]:
    """Each rule of the spec as the value of its live-rule key, by rule name."""
    return {
        rule.name: orjson.dumps({"window": rule.window, "when": rule.condition.text, "action": rule.action})
        for rule in spec.rules
    }


async def seed(location: RulesLocation, documents: dict[str, bytes]) -> int | None:
    """Write ``documents`` under the location's prefix if it is empty; the revision written, or None if not."""
    client = location.client()
    try:
        current = await client.get_prefix(location.prefix.encode())
        if current.kvs:
            return None
        ops = client.transactions
        keys = {(location.prefix + name).encode(): value for name, value in documents.items()}
        ok, _ = await client.transaction(
            compare=[ops.version(key) == 0 for key in keys],
            success=[ops.put(key, value) for key, value in keys.items()],
            failure=[],
        )
        if not ok:
            return None  # someone wrote rules meanwhile: theirs stay
        written = await client.get_prefix(location.prefix.encode(), keys_only=True)
        return int(written.header.revision)
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    """Seed the rules; returns an exit status."""
    parser = argparse.ArgumentParser(prog="seed_rules", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--spec", required=True, help="job spec YAML whose rules are written")
    parser.add_argument("--rules-from", required=True, metavar="URL", help="the workers' --rules-from URL")
    args = parser.parse_args(argv)
    try:
        spec = load_job_spec(args.spec)
        location = RulesLocation.parse(args.rules_from, spec.name)
        documents = rule_documents(spec)
        # the worker's own parser checks the documents before anything is written
        build_rules(spec, location.prefix, [((location.prefix + n).encode(), v) for n, v in documents.items()])
        revision = asyncio.run(seed(location, documents))
    except WinnowError as error:
        print(f"seed_rules: {error}", file=sys.stderr)
        return 2
    if revision is None:
        print(f"seed_rules: {location.prefix} already holds rules; left as they are.")
    else:
        print(f"seed_rules: wrote {', '.join(sorted(documents))} under {location.prefix} at revision {revision}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
