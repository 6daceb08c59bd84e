"""What the ``jaxreg`` subcommands do once :mod:`jaxreg.lab.cli` has parsed their arguments.

Each function checks what the parser cannot see alone (flags that need each other, seeds that
overflow, memory, the data a flag applies to, the output folder) before any work starts, then
opens the run folder (:mod:`jaxreg.lab.run_folder`: one run per folder, a lock, a manifest
written last) and hands over to the recipes, the sweep presets, the benchmarks or
``jaxreg.lab.compare_cli``. A problem ends the command with one line naming the option or the
path (exit status 2 for arguments, 1 for files and failed work), never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from jaxreg.lab import cli_values as values

# The experiments that read Fashion-MNIST, so the only ones --data-dir / --train-size /
# --test-size apply to (the others use seed 002's points, random batches or no data).
FASHION_EXPERIMENTS = ("weight-decay", "dropout", "mc-dropout")
CLI_FLAGS = {"overwrite": "--overwrite", "resume": "--resume"}


def fail(command: str, err: Exception | str) -> int:
    """Prints ``jaxreg COMMAND: error: ...`` (one line) and returns exit status 1."""
    print(f"jaxreg {command}: error: {err}", file=sys.stderr)
    return 1


def check_torch(parser: argparse.ArgumentParser, framework: str) -> None:
    """A parser error when ``--framework`` needs PyTorch and it is not installed."""
    if framework in ("torch", "both") and importlib.util.find_spec("torch") is None:
        parser.error(
            f"--framework {framework} needs PyTorch, which is not installed: "
            "pip install 'jaxreg[torch]' (CPU build: pip install torch==2.13.0), "
            "or use --framework jax"
        )


def compile_cache(*, off: bool) -> None:
    """JAX's persistent compilation cache on (or off) for this process; an unusable cache folder
    is one warning line and the command goes on without it."""
    from jaxreg.lab import timing

    if off:
        timing.disable_compilation_cache()
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", timing.CacheWarning)
        timing.enable_compilation_cache()
    for warning in caught:
        if issubclass(warning.category, timing.CacheWarning):
            print(f"jaxreg: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(
                warning.message, warning.category, warning.filename, warning.lineno
            )


def open_folder(path: str | Path, kind: str, args: argparse.Namespace, **kw: Any):
    """:func:`jaxreg.lab.run_folder.open_run_folder` with the CLI's names for the options."""
    from jaxreg.lab.run_folder import open_run_folder

    return open_run_folder(
        path,
        kind=kind,
        overwrite=getattr(args, "overwrite", False),
        command="jaxreg " + " ".join(getattr(args, "argv", [])),
        label="--out",
        flags=CLI_FLAGS,
        **kw,
    )


# ---- run / main ---------------------------------------------------------------------------------
def _check_data_flags(parser, args: argparse.Namespace, names: tuple[str, ...]) -> None:
    from jaxreg.lab.data import FASHION_MNIST_SIZES

    given = [
        flag
        for flag, value in (
            ("--data-dir", args.data_dir),
            ("--train-size", args.train_size),
            ("--test-size", args.test_size),
        )
        if value is not None
    ]
    other = [n for n in names if n not in FASHION_EXPERIMENTS]
    if given and other:
        parser.error(
            f"{given[0]} applies to the Fashion-MNIST experiments ({', '.join(FASHION_EXPERIMENTS)}"
            f"): {other[0]} reads no Fashion-MNIST (drop {given[0]})"
        )
    for flag, value, split in (
        ("--train-size", args.train_size, "train"),
        ("--test-size", args.test_size, "test"),
    ):
        if value is not None and value > FASHION_MNIST_SIZES[split]:
            parser.error(
                f"{flag} {value}: Fashion-MNIST has {FASHION_MNIST_SIZES[split]} {split} examples"
                f" (use at most {FASHION_MNIST_SIZES[split]})"
            )


def seeds_memory_error(config: dict, seeds: int, dtype: str, test_size: int | None) -> str | None:
    """Why ``--seeds N`` cannot fit in memory (the estimate and what is available), or None.

    The JAX side trains the seeds as one vmapped program: per seed its parameters, gradients,
    optimizer state and initial copy, one training batch's activations (forward, backward,
    masks) and an evaluation chunk's, for the config's model; a generous estimate, made before
    anything is allocated. A model the estimate cannot build is not checked.
    """
    if seeds <= 1:
        return None
    try:
        per_seed = _seed_bytes(config, dtype, test_size)
    except Exception:  # noqa: BLE001 - a config the estimate does not know: not checked
        return None
    from jaxreg.lab import distributed

    need, have = seeds * per_seed, distributed.available_bytes()
    if need <= have:
        return None
    return (
        f"--seeds {seeds}: the JAX side trains the seeds as one vmapped program of about "
        f"{need / 2**30:.1f} GiB ({seeds} x {per_seed / 2**20:.1f} MiB per seed: parameters, "
        f"gradients, optimizer state and a batch's activations), more than the "
        f"{have / 2**30:.1f} GiB available: use --seeds {max(1, have // per_seed)} or fewer"
    )


def _seed_bytes(config: Any, dtype: str, test_size: int | None) -> int:
    import jax
    import jax.numpy as jnp

    module, shape, batch = _model_and_batch(config)
    keys = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    shapes = jax.eval_shape(lambda: module.init(keys, jnp.zeros((1, *shape))))
    leaves = jax.tree.leaves(shapes)
    n_params = sum(leaf.size for leaf in leaves)
    widths = sum(leaf.shape[-1] for leaf in leaves if leaf.ndim >= 2) or 1
    inputs = int(np.prod(shape))
    evaluated = min(2000, test_size or 10000)
    floats = 4 * n_params + 4 * batch * (widths + inputs) + 2 * evaluated * widths
    return floats * (8 if dtype == "float64" else 4)


def _model_and_batch(config: Any) -> tuple[Any, tuple[int, ...], int]:
    """The Flax module, one example's input shape and the batch size of an experiment config
    (a :class:`jaxreg.lab.spec.Spec`, or the older dict with ``model: {name, ...}``)."""
    if isinstance(config, dict):
        from jaxreg import models

        spec = dict(config["model"])
        module = getattr(models, spec.pop("name"))(**spec)
        data = config.get("data")
        batch = config.get("batch_size") or (
            data.get("n_samples", 1) if isinstance(data, dict) else 1
        )
        return module, (int(spec.get("num_inputs", 1)),), int(batch)
    from jaxreg.lab.spec import Data, linen_model

    module = linen_model(config.model, config.model_kwargs)
    if isinstance(config.data, Data):
        shape = {"flat": (784,), "nhwc": (28, 28, 1), "nchw": (1, 28, 28)}[config.data.layout]
        n_train = config.data.train_size or 60000
    else:  # a callable returning arrays (seed 002's 20 points): small by construction
        arrays = config.data()
        x = arrays.x_train if hasattr(arrays, "x_train") else arrays[0]
        shape, n_train = tuple(np.shape(x)[1:]), len(x)
    return module, shape, int(config.batch_size or n_train)


def run_or_main(parser, args: argparse.Namespace, argv: list[str], recipes) -> int:
    """``jaxreg run NAME`` / ``jaxreg main``: checks, the run folder, then the recipes."""
    names = recipes.MAIN_EXPERIMENTS if args.command == "main" else (args.name,)
    seeds = args.seeds or (recipes.MAIN_SEEDS if args.command == "main" else 1)
    problem = values.seed_range_error(args.seed, seeds)
    if problem:
        parser.error(problem)
    _check_data_flags(parser, args, names)
    options = recipes.RunOptions(
        framework=args.framework,
        epochs=args.epochs,
        seed=args.seed,
        faithful=getattr(args, "faithful", False),
        data_dir=args.data_dir,
        limit_train=args.train_size,
        limit_test=args.test_size,
        progress=not args.no_progress and sys.stdout.isatty(),
        config_path=getattr(args, "config", None),
        command="jaxreg " + " ".join(argv),
        matched=args.matched,
        dtype=args.dtype,
        seeds=seeds,
    )
    try:
        for name in names:
            recipes.check_options(name, options)
    except ValueError as err:
        parser.error(str(err))
    try:
        configs = {name: recipes.load_config(name, options.config_path) for name in names}
    except (FileNotFoundError, ValueError) as err:
        return fail(args.command, err)
    for name in names if seeds > 1 else ():
        problem = seeds_memory_error(configs[name], seeds, args.dtype, args.test_size)
        if problem:
            parser.error(problem)

    from jaxreg.lab import report

    kind = "main" if args.command == "main" else "run"
    try:
        out = args.out or report.claim_default_dir("main" if kind == "main" else args.name)
        folder = open_folder(out, kind, args)
    except report.RunFolderError as err:
        return fail(args.command, err)
    options = dataclasses.replace(options, out=folder.path)
    with folder:
        try:
            if args.command == "main":
                result = recipes.run_main(options)
            else:
                result = recipes.run_experiment(args.name, options)
        except (FileNotFoundError, ValueError) as err:
            folder.fail(f"{type(err).__name__}: {err}")
            return fail(args.command, err)
    print(result.table)
    print(f"\nresults in {result.run_dir} (run {folder.run_id})")
    return 0


# ---- sweep --------------------------------------------------------------------------------------
def _check_sweep_flags(parser, args: argparse.Namespace) -> None:
    from jaxreg.lab import distributed
    from jaxreg.lab.data import FASHION_MNIST_SIZES

    try:
        distributed.check_flags(
            args.coordinator, args.num_processes, args.process_id, auto=args.distributed
        )
    except ValueError as err:
        parser.error(str(err))
    if args.synthetic:
        for flag, value in (("--train-size", args.train_size), ("--data-dir", args.data_dir)):
            if value is not None:
                what = "sets the training size" if flag == "--train-size" else "uses no data files"
                parser.error(f"--synthetic {args.synthetic} {what}: drop {flag}")
    elif args.train_size is not None and args.train_size > FASHION_MNIST_SIZES["train"]:
        parser.error(
            f"--train-size {args.train_size}: Fashion-MNIST has {FASHION_MNIST_SIZES['train']} "
            "training examples"
        )
    if args.seeds and len(set(args.seeds)) != len(args.seeds):
        repeated = next(s for s in args.seeds if args.seeds.count(s) > 1)
        parser.error(f"--seeds: seed {repeated} is given twice (each run would train twice)")
    if len({name for name, _ in args.grid}) != len(args.grid):
        parser.error("--grid: each hyperparameter may be given once")
    given = [flag for flag in ("overwrite", "resume", "no_resume") if getattr(args, flag)]
    if len(given) > 1:
        flags = " and ".join("--" + flag.replace("_", "-") for flag in given)
        parser.error(f"{flags} exclude each other")


def sweep(parser, args: argparse.Namespace, argv: list[str]) -> int:
    """``jaxreg sweep PRESET``: checks, the run folder (resumable), then the preset's plan."""
    from jaxreg.lab import distributed, presets

    if args.preset == "noise-injection":
        # A tune-then-confirm procedure over several configs, not one grid.
        from jaxreg.lab import noise_injection

        return noise_injection.main(parser, args, argv)
    _check_sweep_flags(parser, args)
    distributed.init_distributed(
        args.coordinator, args.num_processes, args.process_id, auto=args.distributed
    )
    try:
        plan = presets.build_plan(
            args.preset,
            model=args.model,
            hidden=args.hidden,
            epochs=args.epochs,
            lr=args.lr,
            grid=dict(args.grid),
            seeds=args.seeds,
        )
    except ValueError as err:
        parser.error(str(err))
    data_options = {
        "data_dir": args.data_dir,
        "train_size": args.train_size,
        "test_size": args.test_size,
        "validation": args.validation,
        "synthetic": args.synthetic,
    }
    out = Path(args.out or presets.default_out(plan, data_options))
    import jax

    from jaxreg.lab.run_folder import RunFolderError

    folder = None
    resume = not args.no_resume
    if jax.process_index() == 0:  # the one writer of a multi-host sweep
        asked = True if args.resume else (False if args.no_resume else None)
        try:
            folder = open_folder(out, "sweep", args, resume=asked, resumable=True)
        except RunFolderError as err:
            return fail("sweep", err)
        resume = folder.resumed
    try:
        dataset = presets.load_dataset(plan, **data_options)
        report = presets.run_plan(
            plan,
            dataset,
            out,
            command="jaxreg " + " ".join(argv),
            source=f"synthetic({args.synthetic})" if args.synthetic else "fashion-mnist",
            chunk_size=args.chunk_size,
            memory_budget=int(args.memory_budget) if args.memory_budget else None,
            devices=args.devices,
            resume=resume,
            baseline=args.baseline,
            quiet=args.quiet,
        )
    except (FileNotFoundError, ValueError) as err:
        if folder is not None:
            folder.fail(f"{type(err).__name__}: {err}")
        return fail("sweep", err)
    except BaseException as err:
        if folder is not None:
            folder.fail(f"{type(err).__name__}: {err}")
        raise
    if folder is not None:
        folder.complete()
    if report is not None:
        if not args.quiet:
            print(report.read_text())
        n_runs = len(plan.points) * len(plan.seeds)
        run_id = f" (run {folder.run_id})" if folder is not None else ""
        print(f"sweep {plan.name}: {n_runs} runs, report in {report}{run_id}")
    return 0


# ---- bench, compare -----------------------------------------------------------------------------
def bench(args: argparse.Namespace) -> int:
    """``jaxreg bench``: ``benchmarks.run.run`` of the source checkout in the current folder."""
    # benchmarks/ is not installed with jaxreg: it is imported from the checkout being run in.
    if (Path.cwd() / "benchmarks" / "run.py").is_file() and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        from benchmarks import run as bench_run
    except ModuleNotFoundError as err:
        if err.name != "benchmarks":
            raise
        return fail("bench", "jaxreg bench runs from a source checkout (make bench)")
    try:
        bench_run.run(
            quick=args.quick,
            rows=args.rows,
            out=args.out,
            device=args.device,
            plot=not args.no_plot,
        )
    except ValueError as err:
        return fail("bench", err)
    return 0


def compare(args: argparse.Namespace) -> int:
    """``jaxreg compare SPEC.py``: ``jaxreg.lab.compare_cli.run`` inside the ``--out`` run folder.

    The comparison's report is complete whether its checks pass (0) or fail (1); a spec that
    cannot be loaded (2) or an exception leaves the folder marked failed.
    """
    from jaxreg.lab import compare_cli

    if getattr(args, "out", None) is None:
        return compare_cli.run(args)
    from jaxreg.lab.run_folder import RunFolderError

    try:
        folder = open_folder(args.out, "compare", args)
    except RunFolderError as err:
        return fail("compare", err)
    with folder:
        args.run_id = folder.run_id
        status = compare_cli.run(args)
        if status not in (0, 1):
            folder.fail(f"exit status {status}")
    return status
