"""What ``jaxreg sweep noise-injection`` concludes and the files it leaves.

:func:`analyse` turns the measured accuracies into intervals and verdicts
(:mod:`jaxreg.lab.stats`); :func:`write` renders them: report, tables, raw numbers, a plot. Every
number in
``report.md`` is read from the results of the run (nothing is typed in), every file is written
atomically (:mod:`jaxreg.lab.files`) and tables go through :func:`jaxreg.lab.report.format_table`.

PyTorch equivalent: none (a results table and a matplotlib figure written by hand).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxreg.lab.files import atomic_write_bytes, atomic_write_text, csv_text, write_json
from jaxreg.lab.report import format_table

PLOT = "noise_injection.png"


def tuning_mean(values: Sequence[float]) -> float:
    """Mean validation accuracy of a tuning point over its seeds; NaN if any seed diverged.

    Example:
      >>> tuning_mean([0.5, 1.0]), tuning_mean([0.8, float("nan")])
      (0.75, nan)
    """
    values = [float(v) for v in values]
    if not values or not all(map(math.isfinite, values)):
        return math.nan
    return math.fsum(values) / len(values)


def analyse(results: Mapping[str, Any], level: float = 0.95) -> list[dict[str, Any]]:
    """One row per technique: test accuracy mean and interval, difference to the reference.

    The difference is paired (seed ``i`` of every technique starts from the same weights and
    batch order); a technique with a diverged seed has no interval (``None``).

    Args:
      results: from :func:`tune_then_confirm`.
      level: confidence level of the intervals.

    Returns:
      Dicts with ``name``, ``chosen`` (text), ``val_acc`` (the chosen point's tuning mean, or
      None), ``test`` (:class:`jaxreg.lab.stats.Interval`), ``diff`` (a
      :class:`jaxreg.lab.stats.Difference` vs the reference, None for the reference) and
      ``beats`` (mean above the reference's).

    Example:
      >>> res = {"reference": "a", "techniques": [
      ...     {"name": "a", "chosen": {}, "tuning": [], "test_acc": [0.80, 0.81, 0.82]},
      ...     {"name": "b", "chosen": {"strength": 0.1}, "tuning": [],
      ...      "test_acc": [0.82, 0.83, 0.84]}]}
      >>> rows = analyse(res)
      >>> rows[1]["diff"].verdict, round(rows[1]["diff"].interval.mean, 4), rows[1]["beats"]
      ('different', 0.02, True)
    """
    from jaxreg.lab import stats

    by_name = {t["name"]: t for t in results["techniques"]}
    ref = by_name[results["reference"]]["test_acc"]
    ref_ok = all(map(math.isfinite, ref))
    rows = []
    for tech in results["techniques"]:
        accs = tech["test_acc"]
        ok = all(map(math.isfinite, accs))
        chosen_tune = [t for t in tech["tuning"] if t["point"] == tech["chosen"]]
        row = {
            "name": tech["name"],
            "chosen": describe_point(tech["chosen"]),
            "val_acc": chosen_tune[0]["val_acc_mean"] if chosen_tune else None,
            "test": stats.mean_interval(accs, level) if ok else None,
            "diff": None,
            "beats": None,
        }
        if tech["name"] != results["reference"] and ok and ref_ok:
            row["diff"] = stats.difference(accs, ref, level=level, paired=True)
            row["beats"] = row["diff"].interval.mean > 0
        rows.append(row)
    return rows


def describe_point(point: Mapping[str, float]) -> str:
    """A chosen point as text, names sorted (as ``results.json`` stores them), zero weight decay
    left out.

    Example:
      >>> describe_point({"weight_decay": 0.0, "strength": 0.2})
      'strength=0.2'
    """
    shown = {k: v for k, v in point.items() if not (k == "weight_decay" and v == 0.0)}
    return ", ".join(f"{k}={v:g}" for k, v in sorted(shown.items())) or "-"


def _interval(iv: Any) -> str:
    return "-" if iv is None else f"{iv.mean:.4f} [{iv.low:.4f}, {iv.high:.4f}]"


def table_rows(rows: Sequence[Mapping[str, Any]], reference: str) -> list[dict[str, str]]:
    """The report's table: one row per technique, the intervals as text.

    Example:
      >>> from jaxreg.lab.stats import mean_interval
      >>> rows = [{"name": "a", "chosen": "-", "val_acc": None, "diff": None, "beats": None,
      ...          "test": mean_interval([0.8, 0.82])}]
      >>> table_rows(rows, "a")[0]["vs"]
      'reference'
    """
    out = []
    for row in rows:
        diff = row["diff"]
        if row["name"] == reference:
            vs, verdict = "reference", "-"
        elif diff is None:
            vs, verdict = "-", "diverged run: no interval"
        else:
            iv = diff.interval
            vs = f"{iv.mean:+.4f} [{iv.low:+.4f}, {iv.high:+.4f}]"
            verdict = diff.verdict
        out.append(
            {
                "technique": row["name"],
                "chosen": row["chosen"],
                "val": "-" if row["val_acc"] is None else f"{row['val_acc']:.4f}",
                "test": _interval(row["test"]),
                "vs": vs,
                "verdict": verdict,
            }
        )
    return out


def conclusion(rows: Sequence[Mapping[str, Any]], reference: str, level: float = 0.95) -> list[str]:
    """The answer in words: which techniques beat the reference, and which significantly.

    Example:
      >>> conclusion([{"name": "d", "beats": None, "diff": None}], "d")[0]
      'No technique had a higher mean test accuracy than d.'
    """
    pct = f"{100 * level:g}%"
    above = [r for r in rows if r["beats"]]
    significant = [r for r in above if r["diff"].verdict == "different"]
    worse = [r for r in rows if r["beats"] is False and r["diff"].verdict == "different"]
    if not above:
        lines = [f"No technique had a higher mean test accuracy than {reference}."]
    else:
        names = ", ".join(f"{r['name']} ({r['diff'].interval.mean:+.4f})" for r in above)
        lines = [f"Higher mean test accuracy than {reference}: {names}."]
        if significant:
            lines.append(
                "Significantly better at "
                + pct
                + " (paired interval above 0): "
                + ", ".join(r["name"] for r in significant)
                + "."
            )
        else:
            lines.append(
                f"None of these differences is significant at {pct}: each paired interval "
                "holds 0, so this run cannot tell them from dropout."
            )
    if worse:
        lines.append(
            f"Significantly worse than {reference} at {pct}: "
            + ", ".join(r["name"] for r in worse)
            + "."
        )
    return lines


def edge_choices(results: Mapping[str, Any]) -> list[str]:
    """Techniques whose chosen value is the smallest or largest of its grid axis.

    The optimum may then lie beyond the grid; the report says so rather than hide it.

    Example:
      >>> tech = {"name": "d", "chosen": {"strength": 0.1}, "tuning": [
      ...     {"point": {"strength": v}} for v in (0.1, 0.2, 0.3)]}
      >>> edge_choices({"techniques": [tech]})
      ['d (strength=0.1, grid 0.1 to 0.3)']
    """
    notes = []
    for tech in results["techniques"]:
        for axis in {k for p in tech["tuning"] for k in p["point"]}:
            values = sorted({p["point"][axis] for p in tech["tuning"]})
            value = tech["chosen"][axis]
            if len(values) > 1 and value in (values[0], values[-1]):
                notes.append(
                    f"{tech['name']} ({axis}={value:g}, grid {values[0]:g} to {values[-1]:g})"
                )
    return notes


def diverged_lines(results: Mapping[str, Any]) -> list[str]:
    """Report lines naming every run whose objective became NaN/Inf (none: no lines).

    Example:
      >>> tech = {"name": "gn", "diverged": [], "tuning": [
      ...     {"point": {"strength": 3.0}, "val_acc": [float("nan")]}]}
      >>> diverged_lines({"techniques": [tech]})[0]
      'Diverged (objective NaN/Inf; never chosen): gn strength=3 while tuning (1 seed).'
    """
    parts = []
    for tech in results["techniques"]:
        for p in tech["tuning"]:
            n = sum(not math.isfinite(float(v)) for v in p["val_acc"])
            if n:
                point = describe_point(p["point"])
                parts.append(f"{tech['name']} {point} while tuning ({n} seed{'s' * (n > 1)})")
        if tech.get("diverged"):
            parts.append(f"{tech['name']} at the chosen point, seeds {tech['diverged']}")
    if not parts:
        return []
    return ["Diverged (objective NaN/Inf; never chosen): " + "; ".join(parts) + ".", ""]


def plot(rows: Sequence[Mapping[str, Any]], results: Mapping[str, Any], path: Path) -> Path:
    """Test accuracy per technique (seeds as dots, mean and interval as a bar), and the paired
    difference to the reference with its interval."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 0.5 * len(rows) + 1.8), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2, sharey=True)
    accs = {t["name"]: t["test_acc"] for t in results["techniques"]}
    ys = list(range(len(rows)))[::-1]
    for y, row in zip(ys, rows, strict=True):
        left.plot(accs[row["name"]], [y] * len(accs[row["name"]]), "o", color="0.6", ms=4)
        if row["test"] is not None:
            iv = row["test"]
            left.errorbar(iv.mean, y, xerr=[[iv.mean - iv.low], [iv.high - iv.mean]], fmt="sk")
        if row["diff"] is not None:
            iv = row["diff"].interval
            colour = "tab:green" if row["diff"].verdict == "different" and iv.mean > 0 else "k"
            if row["diff"].verdict == "different" and iv.mean < 0:
                colour = "tab:red"
            right.errorbar(
                iv.mean, y, xerr=[[iv.mean - iv.low], [iv.high - iv.mean]], fmt="s", color=colour
            )
    left.set_yticks(ys, [r["name"] for r in rows])
    left.set_xlabel(f"test accuracy (seeds, mean and {results.get('level', 0.95):.0%} interval)")
    right.axvline(0.0, color="0.5", lw=1, ls="--")
    right.set_xlabel(f"paired difference to {results['reference']}")
    fig.suptitle(
        f"Fashion-MNIST, 784-256-256-10, {results['epochs']} epochs, "
        f"{len(results['seeds'])} seeds per technique"
    )
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return atomic_write_bytes(path, buf.getvalue())


def write(
    results: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    out: str | Path,
    *,
    command: str = "",
    description: str = "",
    run_id: str = "",
) -> Path:
    """Writes ``results.json``, ``results.csv``, ``tuning.csv``, the plot and ``report.md``.

    Args:
      results: from :func:`jaxreg.lab.noise_injection.tune_then_confirm`.
      rows: from :func:`analyse`.
      out: the folder.
      command: the command line, quoted in the report.
      description: the preset's description.
      run_id: the run folder's id (:mod:`jaxreg.lab.run_folder`), put on every row.

    Returns:
      The path of ``report.md``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ref, level = results["reference"], results.get("level", 0.95)
    summary = []
    for row in rows:
        iv, diff = row["test"], row["diff"]
        summary.append(
            {
                "run_id": run_id,
                "technique": row["name"],
                "chosen": row["chosen"],
                "val_acc_tuning": row["val_acc"],
                "test_acc_mean": None if iv is None else iv.mean,
                "test_acc_low": None if iv is None else iv.low,
                "test_acc_high": None if iv is None else iv.high,
                "test_acc_sd": None if iv is None else iv.sd,
                "n": None if iv is None else iv.n,
                "diff_vs_ref": None if diff is None else diff.interval.mean,
                "diff_low": None if diff is None else diff.interval.low,
                "diff_high": None if diff is None else diff.interval.high,
                "verdict": "reference" if row["name"] == ref else (diff and diff.verdict),
            }
        )
    record = {**results, "summary": summary, "command": command, "description": description}
    write_json(out / "results.json", record)
    atomic_write_text(out / "results.csv", csv_text(summary, list(summary[0])))
    tuning = [
        {
            "run_id": run_id,
            "technique": t["name"],
            **p["point"],
            "val_acc_mean": p["val_acc_mean"],
            "diverged_seeds": sum(not math.isfinite(v) for v in p["val_acc"]),
        }
        for t in results["techniques"]
        for p in t["tuning"]
    ]
    fields = list(dict.fromkeys(k for r in tuning for k in r))
    atomic_write_text(out / "tuning.csv", csv_text(tuning, fields) if tuning else "")
    plot(rows, results, out / PLOT)

    data = results["data"]
    seconds = sum(t["timing"]["run_s"] + t["timing"]["compile_s"] for t in results["techniques"])
    lines = ["# Sweep: noise-injection", ""]
    if command:
        lines += ["```", command, "```", ""]
    if description:
        lines += [description[0].upper() + description[1:] + ".", ""]
    lines += [
        f"Fashion-MNIST: {data['train']} training images, {data['validation']} held out for "
        f"validation (tuning only), {data['test']} test images. {results['epochs']} epochs per "
        f"run. Tuning seeds {results['tune_seeds']}; confirmation seeds {results['seeds']}. "
        f"Compute (compile + run): {seconds:.0f} s.",
        "",
        format_table(
            table_rows(rows, ref),
            ["technique", "chosen", "val", "test", "vs", "verdict"],
            headers={
                "chosen": "chosen on validation",
                "val": "val acc (tuning)",
                "test": f"test acc, mean [{level:.0%} CI]",
                "vs": f"difference to {ref} [{level:.0%} CI]",
                "verdict": "verdict",
            },
        ),
        "",
        f"Intervals: Student t over the {len(results['seeds'])} confirmation seeds. The "
        f"difference to {ref} is paired: seed i starts every technique from the same weights "
        "and batch order; 'different' means its interval excludes 0.",
        "",
        *conclusion(rows, ref, level),
        "",
        *diverged_lines(results),
        *(
            [
                "Chosen at an edge of its grid (the best setting may lie beyond it): "
                + "; ".join(edge_choices(results))
                + ".",
                "",
            ]
            if edge_choices(results)
            else []
        ),
        "Techniques:",
        "",
        *[f"- {t['name']}: {t['note']}" for t in results["techniques"] if t.get("note")],
        "",
        f"![{PLOT}]({PLOT})",
        "",
    ]
    return atomic_write_text(out / "report.md", "\n".join(lines))


def rewrite(out: str | Path) -> Path:
    """Renders ``out/report.md`` and the other files again from ``out/results.json``.

    The analysis reads only the measured numbers, so a report can be regenerated (after a
    change to the rendering) without training again.

    Returns:
      The path of ``report.md``.
    """
    import json

    out = Path(out)
    results = json.loads((out / "results.json").read_text())
    results.pop("summary", None)
    command = results.pop("command", "")
    for tech in results["techniques"]:
        # to_plain wrote non-finite floats as strings.
        for key in ("test_acc", "val_acc", "train_acc"):
            tech[key] = [float(v) for v in tech[key]]
        for point in tech["tuning"]:
            point["val_acc"] = [float(v) for v in point["val_acc"]]
            point["val_acc_mean"] = tuning_mean(point["val_acc"])
    description = results.pop("description", None)
    if description is None:
        from jaxreg.lab import configs

        # The shipped preset's text (read as data: this module never imports the procedure).
        path = configs.experiments_dir() / "sweeps" / "noise_injection.py"
        description = configs.load_config_file(path, name="sweep_noise_injection").get(
            "description", ""
        )
    rows = analyse(results, results.get("level", 0.95))
    return write(results, rows, out, command=command, description=description)
