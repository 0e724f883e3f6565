"""`python -m finetune models`: list the customizable base models, show one, or compare some.

    models [--customization-type T] [--region R] [--modality M]
    models show ID
    models compare ID ID [ID ...]

Output is plain text in aligned columns. Filters that match nothing print a message and exit 0
(an empty answer is an answer); an unknown id in `show` or `compare` is a usage error (exit 2) with
the closest ids suggested. `show` is the one place a user reads what a training record of the model
looks like: per customization type its regions, data limits, record format and an example record
(`finetune.cli.record_formats`).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from finetune.cli.main import EXIT_OK, UsageError
from finetune.cli.record_formats import RECORD_FORMATS
from finetune.core.catalog import (
    CATALOG,
    CUSTOMIZATION_TYPES,
    FINE_TUNING,
    TYPE_ABBREVIATIONS,
    ModelEntry,
    find_model,
    format_number,
    suggest_models,
)
from finetune.core.formats import TOKEN_ESTIMATE_METHOD, DataFormat, DatasetLimits
from finetune.core.prices import PRICE_FIELDS, Price, Source, list_prices

PRICE_LABELS = {
    "training_per_1k_tokens": "price: training / 1k tokens",
    "training_per_image": "price: training / image seen",
    "storage_per_month": "price: storage / month",
    "pt_no_commitment_per_hour": "price: PT / unit-hour, no commitment",
    "pt_one_month_per_hour": "price: PT / unit-hour, OneMonth",
    "pt_six_months_per_hour": "price: PT / unit-hour, SixMonths",
    "on_demand_input_per_1k_tokens": "price: on-demand / 1k input tokens",
    "on_demand_output_per_1k_tokens": "price: on-demand / 1k output tokens",
}
TYPE_LEGEND = "Types: " + ", ".join(f"{short}={full}" for full, short in TYPE_ABBREVIATIONS.items())


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the customizable base models (or `models compare ID ID ...`)",
        description="List the base models Bedrock can customize, filtered, or compare some side by side.",
    )
    parser.add_argument(
        "--customization-type",
        type=_customization_type,
        metavar="T",
        help="only models supporting this type: " + ", ".join(CUSTOMIZATION_TYPES) + " (or FT, CPT, DIST)",
    )
    parser.add_argument("--region", metavar="R", help="only models customizable in this region")
    parser.add_argument(
        "--modality", metavar="M", help="only models taking or producing this modality (text, image, ...)"
    )
    parser.set_defaults(handler=list_models)
    actions = parser.add_subparsers(dest="models_action", metavar="{show,compare}")
    show = actions.add_parser(
        "show",
        help="everything about one model, with the record format and an example record",
        description="One model: customization types and their regions, data limits, the record format "
        "of each type with an example record, hyperparameters (ranges and defaults) and serving options.",
    )
    show.add_argument("id", metavar="ID", help="a model id, e.g. amazon.nova-lite-v1:0:300k")
    show.set_defaults(handler=show_model)
    compare = actions.add_parser(
        "compare",
        help="compare models side by side",
        description="Compare base models: customization, hyperparameters, data, serving and prices.",
    )
    compare.add_argument("ids", nargs="+", metavar="ID", help="model ids (at least two)")
    compare.add_argument(
        "--region",
        metavar="R",
        help="price every model in this region (default: each model's first customization region)",
    )
    compare.set_defaults(handler=compare_models)


def _customization_type(value: str) -> str:
    wanted = value.strip().upper()
    for full, short in TYPE_ABBREVIATIONS.items():
        if wanted in (full, short):
            return full
    accepted = ", ".join(CUSTOMIZATION_TYPES)
    raise argparse.ArgumentTypeError(f"unknown customization type {value!r}; accepted: {accepted}")


def select_models(
    customization_type: str | None = None, region: str | None = None, modality: str | None = None
) -> list[ModelEntry]:
    """The catalog entries matching every given filter, in catalog order."""
    selected: list[ModelEntry] = []
    for model in CATALOG:
        types = [customization_type] if customization_type else list(model.customization_types)
        if customization_type and customization_type not in model.customization_types:
            continue
        if region and not any(region in model.regions_for(t) for t in types):
            continue
        modalities = {m.lower() for m in (*model.input_modalities, *model.output_modalities)}
        if modality and modality.strip().lower() not in modalities:
            continue
        selected.append(model)
    return selected


def list_models(args: argparse.Namespace) -> int:
    selected = select_models(args.customization_type, args.region, args.modality)
    if not selected:
        given = [
            f"{flag} {value}"
            for flag, value in (
                ("--customization-type", args.customization_type),
                ("--region", args.region),
                ("--modality", args.modality),
            )
            if value
        ]
        print(f"No model matches {' '.join(given)}. Run without filters to see all {len(CATALOG)} models.")
        return EXIT_OK
    header = (
        "ID",
        "PROVIDER",
        "NAME",
        "TYPES",
        "REGIONS",
        "CONTEXT",
        "MODALITIES",
        "DATA FORMAT",
        "ON-DEMAND",
        "LIFECYCLE",
    )
    rows = [
        (
            model.model_id,
            model.provider,
            model.name,
            ",".join(TYPE_ABBREVIATIONS[t] for t in model.customization_types),
            ",".join(
                model.regions_for(args.customization_type) if args.customization_type else model.regions
            ),
            _context(model),
            _modalities(model),
            ",".join(model.data_formats),
            _on_demand(model),
            model.lifecycle,
        )
        for model in selected
    ]
    for line in format_table(header, rows):
        print(line)
    print()
    print(
        f"{len(selected)} models. {TYPE_LEGEND}. One model, with its record format and an example record: "
        "python -m finetune models show ID; side by side: python -m finetune models compare ID ID"
    )
    return EXIT_OK


def known_model(identifier: str) -> ModelEntry:
    """The catalog entry of `identifier`, or a UsageError naming the closest ids."""
    model = find_model(identifier)
    if model is None:
        close = suggest_models(identifier)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise UsageError(f"unknown model id {identifier!r}{hint} (`python -m finetune models` lists all)")
    return model


def compare_models(args: argparse.Namespace) -> int:
    ids: list[str] = args.ids
    if len(ids) < 2:
        raise UsageError("compare needs at least two model ids")
    models = [known_model(identifier) for identifier in ids]
    for line in compare_lines(models, args.region):
        print(line)
    return EXIT_OK


def show_model(args: argparse.Namespace) -> int:
    for line in show_lines(known_model(args.id)):
        print(line)
    return EXIT_OK


def show_lines(model: ModelEntry) -> list[str]:
    """One model, top to bottom: identity, each customization type with its data, hyperparameters,
    serving, notes and the sources of these facts."""
    lines = [f"{model.model_id}: {model.name} ({model.provider})"]
    if model.aliases:
        lines.append(f"  also written: {', '.join(model.aliases)} (a job's base model takes the id above)")
    lines += [
        f"  lifecycle: {model.lifecycle}",
        f"  context window: {_context(model).replace('-', 'not documented')}, modalities: {_modalities(model)}",
        f"  languages: {', '.join(model.languages) or 'not in the reference'}",
        f"  license: {model.license}",
    ]
    for customization in model.customizations:
        limits = customization.limits
        record_format = RECORD_FORMATS[limits.data_format]
        short = TYPE_ABBREVIATIONS[customization.type]
        lines += [
            "",
            f"{customization.type} ({short}) in {', '.join(customization.regions)}",
            f"  data format: {limits.data_format}",
            f"  training records: {_records(limits)}",
            f"  tokens per record: {_tokens(limits)}"
            + (f", estimated as {TOKEN_ESTIMATE_METHOD}" if limits.token_limits else ""),
            f"  max file size: {_bytes(limits.max_file_bytes)}",
            f"  validation set: {_validation(limits)}",
        ]
        if limits.caption_min_chars is not None or limits.caption_max_chars is not None:
            lines.append(
                f"  caption length: {_range(limits.caption_min_chars, limits.caption_max_chars)} characters"
            )
        if limits.max_images_per_record is not None:
            lines.append(f"  images per record: at most {limits.max_images_per_record}")
        if limits.data_format == DataFormat.CONVERSE:
            images = ", ".join(limits.image_formats) or "none (text only)"
            videos = ", ".join(limits.video_formats) or "none"
            lines.append(f"  media formats: images {images}; videos {videos}")
        if customization.teachers:
            lines.append(f"  teacher models: {', '.join(customization.teachers)}")
        lines += [
            "  record format (one JSON object per line of a .jsonl file):",
            f"    {record_format.shape}",
            *(f"    - {rule}" for rule in record_format.rules),
            "  example record:",
            f"    {record_format.example_line()}",
            f"  sources: {customization.source}; {customization.limits_source}",
            f"  check a file: python -m finetune validate --model {model.model_id}"
            + (f" --customization-type {short}" if customization.type != FINE_TUNING else "")
            + " FILE",
        ]
    rows = [(spec.key, spec.describe()) for spec in model.hyperparameters]
    lines += ["", "Hyperparameters (cdk.json fine_tunings.<name>.hyperparameters):"]
    lines += [f"  {line}" for line in format_table(("KEY", "TYPE, RANGE (INCLUSIVE), DEFAULT"), rows)]
    lines.append(f"  source: {model.hyperparameters_source}")
    on_demand = model.serving.on_demand_regions
    lines += [
        "",
        "Serving (cdk.json serving.mode):",
        f"  provisioned: {'yes' if model.serving.provisioned else 'no'} (provisioned throughput, billed per "
        "model unit and hour)",
        f"  on_demand: {'in ' + ', '.join(on_demand) if on_demand else 'no'} (custom model deployment)",
        f"  source: {model.serving.source}",
    ]
    if model.notes:
        lines += ["", "Notes:", *(f"  {note}" for note in model.notes)]
    return lines


def compare_lines(models: Sequence[ModelEntry], region: str | None = None) -> list[str]:
    """The side-by-side comparison: one row per factor, one column per model, then price sources.

    Prices are list prices (no cdk.json overrides: this command reads no project) in `region`, or in
    each model's first customization region.
    """
    sources: list[Source] = []

    def price_cell(price: Price) -> str:
        if not price.offered:
            return "not offered"
        if price.source not in sources:
            sources.append(price.source)
        return f"{price.render()} [{sources.index(price.source) + 1}]"

    regions = [region or (m.regions[0] if m.regions else "-") for m in models]

    rows: list[tuple[str, ...]] = [
        ("provider", *(m.provider for m in models)),
        ("name", *(m.name for m in models)),
        ("lifecycle", *(m.lifecycle for m in models)),
        ("context window", *(_context(m) for m in models)),
        ("modalities", *(_modalities(m) for m in models)),
        ("languages", *(", ".join(m.languages) or "not in the reference" for m in models)),
        ("types", *(", ".join(m.customization_types) for m in models)),
    ]
    types = [t for t in CUSTOMIZATION_TYPES if any(t in m.customization_types for m in models)]
    for ctype in types:
        short = TYPE_ABBREVIATIONS[ctype]
        limits = [m.dataset_limits(ctype) for m in models]
        rows += [
            (f"{short} regions", *(", ".join(m.regions_for(ctype)) or "-" for m in models)),
            (f"{short} data format", *(str(lim.data_format) if lim else "-" for lim in limits)),
            (f"{short} records", *(_records(lim) for lim in limits)),
            (f"{short} tokens per record", *(_tokens(lim) for lim in limits)),
            (f"{short} max file size", *(_bytes(lim.max_file_bytes) if lim else "-" for lim in limits)),
            (f"{short} validation set", *(_validation(lim) for lim in limits)),
        ]
        if ctype == "DISTILLATION":
            rows.append((f"{short} teachers", *(", ".join(m.teachers_for(ctype)) or "-" for m in models)))
    keys = list(dict.fromkeys(key for m in models for key in m.hyperparameter_keys))
    for key in keys:
        cells = []
        for model in models:
            spec = model.hyperparameter(key)
            cells.append(spec.describe() if spec else "-")
        rows.append((f"hyperparameter {key}", *cells))
    rows += [
        ("serving", *(_serving(m) for m in models)),
        ("on-demand", *(_on_demand(m) for m in models)),
    ]
    prices = [list_prices(m.identifiers, r) for m, r in zip(models, regions, strict=True)]
    rows.append(("prices in", *regions))
    for name in PRICE_FIELDS:
        cells = [price_cell(p.get(name)) for p in prices]
        if any(cell != "not offered" for cell in cells):
            rows.append((PRICE_LABELS[name], *cells))
    rows.append(("license", *(m.license for m in models)))
    header = ("MODEL", *(m.model_id for m in models))
    lines = format_table(header, rows)
    notes = [(m.model_id, note) for m in models for note in m.notes]
    if notes:
        lines += ["", "Notes:", *(f"  {model_id}: {note}" for model_id, note in notes)]
    lines += ["", "Price sources:", *(f"  [{i}] {source.cite()}" for i, source in enumerate(sources, 1))]
    lines.append(
        "~$x (unverified): from a secondary source. unknown: no published figure was found (never $0). "
        "Override per environment in cdk.json: environments.<env>.pricing.<model id>.<field>."
    )
    return lines


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Rows as left-aligned columns separated by two spaces, without trailing blanks."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def _context(model: ModelEntry) -> str:
    if model.context_window is None:
        return "-"
    return f"{model.context_window // 1000}k"


def _modalities(model: ModelEntry) -> str:
    return f"{','.join(model.input_modalities)}->{','.join(model.output_modalities)}"


def _serving(model: ModelEntry) -> str:
    modes = [
        mode
        for mode, ok in (("provisioned", model.serving.provisioned), ("on-demand", model.serving.on_demand))
        if ok
    ]
    return ", ".join(modes) or "none"


def _on_demand(model: ModelEntry) -> str:
    regions = model.serving.on_demand_regions
    return f"yes ({','.join(regions)})" if regions else "no"


def _range(low: int | None, high: int | None) -> str:
    if low is None and high is None:
        return "not documented"
    return f"{format(low, ',') if low is not None else '?'}..{format(high, ',') if high is not None else '?'}"


def _records(limits: DatasetLimits | None) -> str:
    return _range(limits.min_records, limits.max_records) if limits else "-"


def _tokens(limits: DatasetLimits | None) -> str:
    if limits is None:
        return "-"
    if not limits.token_limits:
        return "not documented"
    parts = []
    for limit in limits.token_limits:
        text = f"<={limit.max_tokens:,}"
        low, high = limit.batch_size_min, limit.batch_size_max
        if low == high:
            text += f" at batch {low}"
        elif (low, high) != (1, None):
            text += f" at batch {low}-{high if high is not None else ''}"
        parts.append(text)
    return ", ".join(parts)


def _bytes(size: int | None) -> str:
    if size is None:
        return "not documented"
    if size >= 1000**3:
        return f"{format_number(size / 1000**3).removesuffix('.0')} GB"
    return f"{format_number(size / 1000**2).removesuffix('.0')} MB"


def _validation(limits: DatasetLimits | None) -> str:
    if limits is None:
        return "-"
    if not limits.validation_allowed:
        return "not allowed"
    parts = []
    if limits.validation_max_records is not None:
        parts.append(f"<={limits.validation_max_records:,} records")
    if limits.validation_max_file_bytes is not None:
        parts.append(f"<={_bytes(limits.validation_max_file_bytes)}")
    return "allowed" + (f" ({', '.join(parts)})" if parts else "")
