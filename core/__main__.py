"""The command line: ``python -m core {demo,ingest,funnel,segment,generate,tune,user} ...``.

Every data subcommand takes ``--db PATH``; every subcommand takes ``--json``, exits 0 on success, and on failure prints
one clear line to stderr (no traceback) and exits non-zero: 2 for a problem with the input
or the command, 1 for anything unexpected.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from core.config import load_settings
from core.copy.channels import CHANNELS, TONES
from core.errors import InvalidRequestError, MarketLabError
from core.funnels.contract import MODES
from core.store import Store
from core.user_admin import DEFAULT_SECRETS, add_account, list_accounts, remove_account

EXIT_USER_ERROR = 2
EXIT_BUG = 1


def _parse_json_object(text: str, what: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise InvalidRequestError(f"{what} must be a JSON object, e.g. '{{\"visitorid\": \"user_id\"}}' ({e.msg}).", title="Bad option") from e
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidRequestError(f"{what} must be a JSON object of text to text.", title="Bad option")
    return value


def _parse_constants(items: Sequence[str]) -> dict[str, str]:
    constants = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InvalidRequestError(f"--set takes FIELD=VALUE, got {item!r}.", title="Bad option")
        constants[name.strip()] = value
    return constants


def _emit(payload: dict[str, object], as_json: bool, human: str) -> None:
    print(json.dumps(payload, indent=2, default=str) if as_json else human)


def cmd_demo(args: argparse.Namespace, store: Store) -> int:
    from core.sample_data import build_demo

    if args.if_empty and not store.is_empty():
        _emit({"seeded": False, "reason": "store not empty", **store.counts()}, args.json, "The store already has data; nothing to do.")
        return 0

    def progress(fraction: float, message: str) -> None:
        if not args.json:
            print(f"  {fraction:4.0%}  {message}", file=sys.stderr)

    summary = build_demo(store, seed=args.seed, scale=args.scale, replace=args.replace, progress=progress)
    payload = {"seeded": True, **summary.__dict__}
    _emit(payload, args.json, f"Demo store ready in {store.path}: {summary.products} products, {summary.users} users, "
          f"{summary.events} events, {summary.reviews} reviews, {summary.variants} copy variants ({summary.seconds:.1f} s).")
    return 0


def _totals_lines(report) -> str:  # noqa: ANN001 - IngestReport
    """The file's totals beside what was stored, one line each, for the terminal."""
    from core.ingest import totals_table

    lines = [f"  {r['']:>32}: {r['Rows']:,} rows, {r['Users']:,} users, {r['Purchases']:,} purchases, "
             f"{r['Returns']:,} returns, revenue {r['Revenue']:,.2f}" for r in totals_table(report.totals).to_dict("records")]
    if "stored" in report.totals:
        lines.append("  stored + not stored = the file" if report.reconciled else "  WARNING: stored + not stored differs from the file")
    return "\n".join(lines)


def cmd_ingest(args: argparse.Namespace, store: Store) -> int:
    from core.ingest import InvalidRowsError, ingest_file

    mapping = _parse_json_object(args.mapping, "--mapping") if args.mapping else None
    try:
        report = ingest_file(
            store, args.table, args.file,
            mapping=mapping, constants=_parse_constants(args.set), skip_invalid=args.skip_invalid,
            max_bytes=load_settings().max_upload_bytes, encoding=args.encoding, dry_run=args.dry_run,
            drop_duplicates=args.drop_duplicates, unreadable_price=args.unreadable_price,
        )
    except InvalidRowsError as e:
        # The report still goes to stdout: a script can read every rejected line's reason.
        if args.json:
            print(json.dumps(e.report.to_dict(), indent=2, default=str))
        raise
    verb = "Would import" if args.dry_run else "Imported"
    human = (f"{verb} {report.inserted + report.updated} of {report.rows} rows into {report.table} "
             f"({report.inserted} new, {report.updated} updated, {report.rejected} rejected).")
    if report.totals:
        human += "\n" + _totals_lines(report)
    for warning in report.warnings:
        human += f"\n  note: {warning}"
    for rejection in report.rejections[:10]:
        human += f"\n  rejected line {rejection['line']}: {rejection['reason']}"
    _emit(report.to_dict(), args.json, human)
    return 0


def _parse_day(text: str, option: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError as e:
        raise InvalidRequestError(f"{option} takes a date like 2026-09-01 (or 2026-09-01T12:00), got {text!r}.", title="Bad option") from e


def cmd_funnel(args: argparse.Namespace, store: Store) -> int:
    from core.funnels import FunnelSpec, funnel

    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    if not steps:
        raise InvalidRequestError("--steps takes event names separated by commas, e.g. view,add_to_cart,purchase.", title="Bad option")
    spec = FunnelSpec.of(
        *steps, window=args.window, mode=args.mode, breakdown=args.breakdown, first_touch_only=args.first_touch,
        repeat_needs_later=args.later_repeat,
        start=_parse_day(args.start, "--from") if args.start else None,
        end=_parse_day(args.end, "--to") if args.end else None,
    )
    result = funnel(store, spec)
    width = max(len(s.label) for s in result.steps)
    lines = [f"{len(steps)}-step funnel, {args.mode}, window {args.window}: {result.users:,} users started"]
    for s in result.steps:
        rates = "" if s.step == 1 else f"  {s.from_previous or 0:6.1%} of previous, {s.from_first or 0:6.1%} of first"
        lines.append(f"  {s.step}. {s.label:<{width}} {s.users:>10,}{rates}")
    if result.breakdown is not None:
        lines.append(f"by {args.breakdown} (users started -> finished):")
        for row in result.by_group().itertuples():
            lines.append(f"  {row.group}: {row.entered:,} -> {row.completed:,} ({row.conversion or 0:.1%})")
    lines += [f"note: {note}" for note in spec.notes()]
    _emit(result.to_dict(), args.json, "\n".join(lines))
    return 0


def cmd_segment(args: argparse.Namespace, store: Store) -> int:
    from core.segments import run_segmentation

    k: int | str = "auto"
    if args.k != "auto":
        try:
            k = int(args.k)
        except ValueError:
            raise InvalidRequestError(f"--k takes 'auto' or a whole number, got {args.k!r}.", title="Bad option") from None

    def progress(fraction: float, message: str) -> None:
        if not args.json:
            print(f"  {fraction:4.0%}  {message}", file=sys.stderr)

    run = run_segmentation(store, k=k, method=args.method, features=args.features, use_text=args.text, progress=progress,
                           rfm_horizon_days=args.horizon)
    summary = run.summary()
    lines = [f"Segmentation {run.run_id}: {run.method}, k={run.k}, {run.users:,} users"
             + (f", silhouette {summary['silhouette']:.2f}" if summary.get("silhouette") is not None else "")]
    for seg in summary["segments"]:
        lines.append(f"  {seg['segment_id']} {seg['name']}: {seg['size']:,} users ({seg['share']:.0%}), "
                     f"conversion {seg['conversion_rate']:.1%}, revenue share {seg['revenue_share']:.0%}; {seg['facts']}")
    lines += [f"  note: {notice}" for notice in summary["notices"]]
    _emit(summary, args.json, "\n".join(lines))
    return 0


def cmd_generate(args: argparse.Namespace, store: Store) -> int:
    from core.copy.facts import load_facts
    from core.copy.variants import GenerationRequest, engine_generate_fn, generate_variants
    from core.llm import load_engine

    product_ids = [p.strip() for p in args.product if p.strip()]
    tones = [t.strip() for t in args.tone.split(",") if t.strip()]
    request = GenerationRequest(product_ids=tuple(product_ids), channel=args.channel, tones=tuple(tones), n=args.n,
                                temperature=args.temperature, seed=args.seed)
    # A bad channel, tone, count or product id fails here, before the model loads (seconds).
    spec = request.check()
    load_facts(store, request.product_ids)

    def progress(fraction: float, message: str) -> None:
        if not args.json:
            print(f"  {fraction:4.0%}  {message}", file=sys.stderr)

    progress(0.0, "Loading the language model")
    engine = load_engine(load_settings())
    variants = generate_variants(store, engine_generate_fn(engine), request, progress=progress, save=not args.no_save)
    payload = {
        "model": engine.describe().summary, "channel": spec.name, "saved": not args.no_save and bool(variants),
        "variants": [v.to_dict() for v in variants],
    }
    lines = [f"{len(variants)} {spec.label} variant(s) from {payload['model']}"
             + ("" if args.no_save else ", saved as drafts") + ":"]
    for v in variants:
        claims = v.unsupported_claims
        lines.append(f"  {v.variant_id}  {v.product_id}  tone {v.tone}  rank {v.rank}  "
                     f"{'within limits' if v.compliant else 'OVER LIMITS'}, tries {v.tries}"
                     + (f", unsupported: {', '.join(claims)}" if claims else ""))
        for name, text in v.fields.items():
            limit = next((f.max_chars for f in spec.fields if f.key == name), None)
            lines.append(f"      {name:<14} {text}  ({len(text)}/{limit or '-'} characters)")
    _emit(payload, args.json, "\n".join(lines))
    return 0


def cmd_tune(args: argparse.Namespace, store: Store) -> int:
    import time

    from core.copy.gold import read_gold
    from core.copy.teaching import teaching_set
    from core.llm.generator import base_model_dir
    from core.llm.loading import pick_device, resolve_model
    from core.llm.tuning import TuneConfig, encode_pair, estimate_seconds, train_adapter

    settings = load_settings()
    config = TuneConfig(rank=args.rank, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed)
    config.check()
    accepted = [(e.facts, e.channel, e.fields, e.tone) for path in args.accepted for e in read_gold(Path(path))]
    lessons = teaching_set(None if args.no_store else store, gold=not args.no_gold, accepted=accepted)
    for why in lessons.refused:
        print(f"  left out: {why}", file=sys.stderr)
    base_dir, _ = base_model_dir(settings.model, settings.model_cache)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    tokens = sum(len(encode_pair(tokenizer, p)[0]) for p in lessons.pairs)
    device = pick_device(args.device)[0].type  # "cuda" with no GPU is refused here, with what to set instead
    estimate = estimate_seconds(tokens, config.epochs, device)
    sources = ", ".join(f"{n} {s}" for s, n in sorted(lessons.by_source().items())) or "none"
    plan = (f"{len(lessons.pairs)} examples ({sources}), {tokens:,} tokens an epoch, {config.epochs} epochs on {device}: "
            f"about {estimate / 60:.0f} minutes")
    if args.dry_run:
        _emit({"examples": len(lessons.pairs), "by_source": lessons.by_source(), "left_out": lessons.refused,
               "tokens_per_epoch": tokens, "estimate_seconds": round(estimate), "device": device}, args.json, plan + " (dry run: nothing trained).")
        return 0
    print(plan + ". Stop with Ctrl-C; running the same command again goes on from the last checkpoint.", file=sys.stderr)
    started = time.perf_counter()

    def step(done: int, total: int, loss: float) -> None:
        if not args.json:
            pace = (time.perf_counter() - started) / done
            print(f"  step {done}/{total}  loss {loss:.3f}  about {pace * (total - done) / 60:.0f} min left", file=sys.stderr)

    result = train_adapter(base_dir, lessons.pairs, Path(args.out), config, base_name=resolve_model(settings.model).name,
                           device=device, on_step=step, extra_manifest={"command": "python -m core tune " + " ".join(args.argv)})
    _emit(result.manifest, args.json, result.summary + f" Use it with MARKETLAB_ADAPTER={result.out_dir}.")
    return 0


def _new_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidRequestError("No terminal to ask for the password: pipe it in with --password-stdin.", title="Password needed")
    first = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Again: ") != first:
        raise InvalidRequestError("The two passwords differ; nothing was changed.", title="Passwords differ")
    return first


def cmd_user(args: argparse.Namespace, store: None) -> int:
    path = Path(args.secrets)
    if args.action == "list":
        accounts = list_accounts(path)
        _emit({"secrets": str(path), "users": [{"name": a.name, "role": a.role.value} for a in accounts]}, args.json,
              "\n".join(f"{a.name:<24} {a.role.value}" for a in accounts) or f"No users in {path}: nobody needs to sign in.")
        return 0
    if not args.name:
        raise InvalidRequestError(f"user {args.action} needs a NAME.", title="Missing user name")
    if args.action == "remove":
        remove_account(args.name, path)
        _emit({"removed": args.name, "secrets": str(path)}, args.json, f"Removed {args.name} from {path}.")
        return 0
    if not args.role:
        raise InvalidRequestError("user add needs --role editor or --role viewer.", title="Missing role")
    account = add_account(args.name, args.role, _new_password(args), path, replace=args.replace)
    _emit({"added": account.name, "role": account.role.value, "secrets": str(path)}, args.json,
          f"{account.name} can sign in as {account.role.value} (password stored as a salted scrypt hash in {path}). "
          "A running MarketLab reloads the file when it changes; restart it if the change does not show.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="MarketLab from the command line.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="DuckDB file (default: $MARKETLAB_DB or data/marketlab.duckdb)")
    common.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", parents=[common], help="seed the demo store")
    demo.add_argument("--seed", type=int, default=42)
    demo.add_argument("--scale", type=float, default=1.0, help="1.0 = ~1M events; smaller for quick trials")
    demo.add_argument("--replace", action="store_true", help="replace existing data")
    demo.add_argument("--if-empty", action="store_true", help="seed only when the store has no data (used by make run)")
    demo.set_defaults(func=cmd_demo)

    ingest = sub.add_parser("ingest", parents=[common], help="import a file into products, events, users or reviews")
    ingest.add_argument("table", choices=["products", "events", "users", "reviews"])
    ingest.add_argument("file")
    ingest.add_argument("--mapping", help='JSON object from source column to field, e.g. \'{"visitorid": "user_id"}\'')
    ingest.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a fixed value for a field with no column, e.g. event_name=purchase")
    ingest.add_argument("--skip-invalid", action="store_true", help="commit the valid rows even if some are rejected")
    ingest.add_argument("--encoding", default="auto", help="text encoding (default: detected)")
    ingest.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
    ingest.add_argument("--unreadable-price", choices=["reject", "lowest", "none"], default="reject",
                        help="products, a price that is not one number: refuse the row (reject, the default); take the lowest "
                             "price of a range and import the others without a price (lowest); import without a price (none)")
    ingest.add_argument("--drop-duplicates", action="store_true",
                        help="events: drop rows that repeat an earlier row exactly (kept by default: a repeat is usually a second purchase)")
    ingest.set_defaults(func=cmd_ingest)

    fun = sub.add_parser("funnel", parents=[common], help="count a conversion funnel (ClickHouse windowFunnel semantics)")
    fun.add_argument("--steps", required=True, help="event names in order, comma-separated, e.g. view,add_to_cart,purchase")
    fun.add_argument("--window", default="7d", help="the last step within this time of the first: 30m, 12h, 7d, 2w (1 minute to 90 days)")
    fun.add_argument("--mode", choices=list(MODES), default="ordered",
                     help="; ".join(f"{m.name}: {m.help}" for m in MODES.values()))
    fun.add_argument("--later-repeat", action="store_true",
                     help="a step that repeats the one before it (purchase,purchase) needs a later event, not the same one")
    fun.add_argument("--breakdown", help="device, campaign, variant_id (any event column), user.country, attributes.KEY or segment:RUN_ID")
    fun.add_argument("--first-touch", action="store_true", help="count only chains that start at each user's first step-1 event")
    fun.add_argument("--from", dest="start", help="first day counted, e.g. 2026-09-01")
    fun.add_argument("--to", dest="end", help="day after the last one counted")
    fun.set_defaults(func=cmd_funnel)

    seg = sub.add_parser("segment", parents=[common], help="segment customers and save the run")
    seg.add_argument("--k", default="auto", help="number of clusters, or auto (best silhouette over 3–8)")
    seg.add_argument("--method", choices=["kmeans", "rfm"], default="kmeans", help="k-means on behaviour, or the standard RFM segments")
    seg.add_argument("--horizon", type=float, default=90, metavar="DAYS",
                     help="RFM: a last order within this many days of the log's end counts as recent (default 90)")
    seg.add_argument("--features", default="behaviour", help="feature set: behaviour, value, engagement or all")
    seg.add_argument("--text", action="store_true", help="add review-text components (all-MiniLM-L6-v2; slower)")
    seg.set_defaults(func=cmd_segment)

    gen = sub.add_parser("generate", parents=[common], help="write copy variants for products with the language model")
    gen.add_argument("--product", action="append", required=True, metavar="ID", help="product id; repeat for several products")
    gen.add_argument("--channel", default="google_rsa", help=f"one of {', '.join(CHANNELS)}")
    gen.add_argument("--tone", default="friendly", help=f"one or more of {', '.join(TONES)}, comma-separated")
    gen.add_argument("--n", type=int, default=3, help="variants per product and tone (1-10)")
    gen.add_argument("--temperature", type=float, default=0.8)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--no-save", action="store_true", help="print the variants without saving them as drafts")
    gen.set_defaults(func=cmd_generate)

    tune = sub.add_parser("tune", parents=[common], help="teach the writer: train a LoRA adapter on the gold set and your approved copy")
    tune.add_argument("--out", default="data/adapters/mine", help="the adapter's folder (default: data/adapters/mine)")
    tune.add_argument("--epochs", type=int, default=3)
    tune.add_argument("--rank", type=int, default=16, help="LoRA rank")
    tune.add_argument("--batch-size", type=int, default=8)
    tune.add_argument("--lr", type=float, default=2e-4, help="learning rate")
    tune.add_argument("--seed", type=int, default=13)
    tune.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    tune.add_argument("--no-gold", action="store_true", help="leave out the gold set the repository ships (data/copy_gold)")
    tune.add_argument("--no-store", action="store_true", help="leave out the approved and edited variants in the store")
    tune.add_argument("--accepted", action="append", default=[], metavar="JSONL",
                      help="copy the pipeline wrote and every gate accepted, in the gold set's format; repeat for several files")
    tune.add_argument("--dry-run", action="store_true", help="say what would be learned and how long it would take; train nothing")
    tune.set_defaults(func=cmd_tune)

    user = sub.add_parser("user", help="add, remove or list the people who may sign in (local user list)")
    user.add_argument("action", choices=["add", "remove", "list"])
    user.add_argument("name", nargs="?", help="user name (add, remove)")
    user.add_argument("--role", choices=["editor", "viewer"], help="editor: upload, generate, approve, delete; viewer: read only")
    user.add_argument("--secrets", default=str(DEFAULT_SECRETS), help=f"the secrets file (default: {DEFAULT_SECRETS})")
    user.add_argument("--password-stdin", action="store_true", help="read the password from standard input (scripts)")
    user.add_argument("--replace", action="store_true", help="reset the password and role of an existing user")
    user.add_argument("--json", action="store_true", help="print machine-readable JSON")
    user.set_defaults(func=cmd_user, needs_store=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)[1:]
    try:
        if not getattr(args, "needs_store", True):
            return args.func(args, None)
        db = args.db or str(load_settings().db_path)
        store = Store(db)
        try:
            return args.func(args, store)
        finally:
            store.close()
    except MarketLabError as e:
        print(f"error: {e.title}: {e.msg}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the CLI contract: one line, never a traceback
        print(f"error: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
