"""`rules list|show|add|rm|publish|rollback|labels`: the editorial rule sets of a corpus, JSON in and out.

Edits go to the corpus's draft; `publish` makes the draft the next live version (needs the editor token when
NEWSREC_EDITOR_TOKEN is set); `rollback` publishes an old version again. See docs/newsroom.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from newsrec.cli.common import corpus_name, print_json, utf8_text
from newsrec.config import DEMO_CORPUS, Settings
from newsrec.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("rules", help="editorial rules of a corpus: draft, publish, roll back")
    commands = parser.add_subparsers(dest="rules_command", required=True)

    def command(name: str, help_text: str, func) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--corpus", type=corpus_name, help="corpus name (default: the demo corpus)")
        sub.set_defaults(func=func)
        return sub

    listing = command("list", "the draft's rules and the published versions", run_list)
    listing.add_argument("--json", action="store_true")
    show = command("show", "one rule set as JSON: the draft (default), the live set, or a version", run_show)
    which = show.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="a published version number")
    which.add_argument("--live", action="store_true", help="the live version")
    show.add_argument("--json", action="store_true", help="print JSON (the default; kept for scripts)")
    add = command("add", "add or replace rules in the draft (JSON: one rule, a list, or a rule set)", run_add)
    add.add_argument("--json", dest="file", default="-", help="JSON file, or - for stdin (default)")
    add.add_argument("--replace", action="store_true", help="the file replaces the whole draft")
    rm = command("rm", "remove rules from the draft", run_rm)
    rm.add_argument("ids", nargs="+", type=utf8_text, help="rule ids")
    publish = command("publish", "publish the draft as the next live version", run_publish)
    _publish_flags(publish)
    publish.add_argument("--note", default="", type=utf8_text, help="what this version changes")
    rollback = command("rollback", "publish an earlier version's rules as a new version", run_rollback)
    rollback.add_argument("version", type=int, help="the version to restore")
    _publish_flags(rollback)
    labels = command("labels", "set or show the sensitivity labels editors gave a story", run_labels)
    labels.add_argument("news_id", nargs="?", type=utf8_text, help="the story (omit to list all)")
    labels.add_argument("labels", nargs="*", type=utf8_text, help="labels to set (none: clear)")
    labels.add_argument("--set", action="store_true", help="set the labels given (needed to clear them)")


def _publish_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--author", required=True, type=utf8_text, help="who publishes")
    parser.add_argument("--expect", type=int, default=None, help="the live version you edited from (conflict check)")
    parser.add_argument("--token", default=None, help="editor token (default: $NEWSREC_EDITOR_TOKEN)")
    parser.add_argument("--json", action="store_true")


def _store(args: argparse.Namespace):
    from newsrec.editorial.store import RuleStore

    settings = Settings.from_env()
    return RuleStore(settings.home, args.corpus or settings.corpus or DEMO_CORPUS)


def run_list(args: argparse.Namespace) -> int:
    store = _store(args)
    draft = store.draft()
    payload = {
        "corpus": store.corpus,
        "live": store.live_version(),
        "draft": {"based_on": draft.based_on, "rules": [_summary(rule) for rule in draft.rules]},
        "versions": store.versions(),
    }
    if args.json:
        print_json(payload)
        return 0
    print(f"corpus {store.corpus}: live version {payload['live'] or 'none'}; draft based on {draft.based_on or '-'}")
    for row in payload["draft"]["rules"]:
        print(f"  {row['id']:<20} {row['kind']:<9} {row['scope']:<28} {row['params']}  {row['window']}")
    for row in payload["versions"]:
        changes = ", ".join(
            f"{k} {' '.join(x if isinstance(x, str) else x['id'] for x in v)}" for k, v in row["diff"].items() if v
        )
        print(
            f"  v{row['version']} by {row['author']} at {row['published_at']}: "
            f"{row['rules']} rules; {changes or 'no change'}"
        )
    return 0


def _summary(rule) -> dict:
    data = rule.to_dict()
    window = " ".join(
        part
        for part in (
            f"from {data['valid_from']}" if data["valid_from"] else "",
            f"until {data['valid_until']}" if data["valid_until"] else "",
        )
        if part
    )
    return {"id": rule.id, "kind": rule.kind, "scope": data["scope"], "params": data["params"], "window": window}


def run_show(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.version is not None:
        ruleset = store.version(args.version)
    elif args.live:
        ruleset = store.live()
        if ruleset is None:
            raise InputError(f"corpus {store.corpus!r} has no live rule set yet; publish one with `rules publish`")
    else:
        ruleset = store.draft()
    sys.stdout.write(ruleset.to_json())
    return 0


def run_add(args: argparse.Namespace) -> int:
    from newsrec.editorial.rules import Rule, RuleSet

    store = _store(args)
    if args.file == "-":
        text, source = sys.stdin.read(), "stdin"
    else:
        try:
            with open(args.file, encoding="utf-8") as handle:
                text, source = handle.read(), args.file
        except OSError as error:
            raise InputError(f"cannot read {args.file}: {error.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{source}: not valid JSON ({error.msg} at line {error.lineno})") from None
    if isinstance(data, dict) and "rules" in data:
        incoming = RuleSet.from_dict(data).rules
    elif isinstance(data, list):
        incoming = tuple(Rule.from_dict(row) for row in data)
    else:
        incoming = (Rule.from_dict(data),)
    draft = store.draft()
    if args.replace:
        from dataclasses import replace

        draft = replace(draft, rules=tuple(incoming))
    else:
        for rule in incoming:
            draft = draft.with_rule(rule)
    saved = store.save_draft(draft)
    print_json({"draft_rules": [rule.id for rule in saved.rules], "added": sorted(rule.id for rule in incoming)})
    return 0


def run_rm(args: argparse.Namespace) -> int:
    store = _store(args)
    draft = store.draft()
    for rule_id in args.ids:
        draft = draft.without(rule_id)
    saved = store.save_draft(draft)
    print_json({"draft_rules": [rule.id for rule in saved.rules], "removed": sorted(args.ids)})
    return 0


def _token(args: argparse.Namespace) -> str | None:
    from newsrec.editorial.store import TOKEN_ENV

    return args.token or os.environ.get(TOKEN_ENV) or None


def run_publish(args: argparse.Namespace) -> int:
    store = _store(args)
    published = store.publish(args.author, args.expect, note=args.note, token=_token(args))
    return _report(store, published, args)


def run_rollback(args: argparse.Namespace) -> int:
    store = _store(args)
    published = store.rollback(args.version, args.author, expected_version=args.expect, token=_token(args))
    return _report(store, published, args)


def _report(store, published, args: argparse.Namespace) -> int:
    row = next(r for r in store.versions() if r["version"] == published.version)
    if args.json:
        print_json(row)
    else:
        print(f"corpus {store.corpus}: version {published.version} is live ({row['rules']} rules; diff {row['diff']})")
    return 0


def run_labels(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.news_id and (args.labels or args.set):
        print_json(store.set_labels(args.news_id, args.labels))
    else:
        labels = store.labels()
        print_json({args.news_id: labels.get(args.news_id, [])} if args.news_id else labels)
    return 0
