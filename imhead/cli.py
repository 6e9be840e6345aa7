"""`python -m imhead <verb>`: what the add-on does, without Blender, and the model's training programs.

The runtime verbs (generate, edit, express, bake, fit, mesh) run on numpy alone, like the add-on;
train, evaluate, ablation, build-data and build-scan-data hand their arguments to the modules that do the work (torch,
scipy and libigl there). Heads go in and out as JSON: model.runtime.head_state.HeadState, what a head
object keeps in a .blend. Meshes are written as the file's extension says (.obj, .ply, .glb, .gltf) in
metres, Y up, face toward +Z (frame.model_to_file); a fitted head lies on its scan, in the scan's
coordinates. Results go to stdout, progress and errors to stderr; a bad input is one line and exit 1.
"""
import argparse
import importlib
import json
import logging
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from model.runtime import HeadModel, ImHeadError, parallel
from model.runtime import fit as fitting
from model.runtime.expressions import PRESETS
from model.runtime.head_state import HeadState, bake_expressions, head_mesh, neutral_mesh, with_vertices
from model.runtime.meshing import is_closed
from model.runtime.mesh_io import in_file_frame, mesh_writer, read_points, write_gltf, write_mesh
from model.runtime.progress import progress_bar

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "weights" / "imhead.npz"
# The add-on's Final resolution (its preferences' default): what a headless head is meshed at unless told.
DEFAULT_RESOLUTION = 256
SCAN_SUFFIXES = (".ply", ".obj", ".npy")
NEUTRAL_KEY = "neutral"  # the file of the neutral mesh among a baked folder's expression meshes
# The programs that train and measure the model: verb -> module whose main(argv) is the program.
DELEGATED = {"train": ("model.training.train", "train a model from a config (torch)"),
             "evaluate": ("model.evaluation.evaluate", "fit held-out heads and write the evaluation tables"),
             "ablation": ("model.training.ablation", "train and score the paper's ablation variants"),
             "build-data": ("model.data.build_dataset", "build the training data set (ICT and Anny heads)"),
             "build-scan-data": ("model.training.scan_data", "build a training data set from a folder of your "
                                 "own head meshes, to fine-tune a model on (train --init --data)")}
# What a fit worker process needs of the fit verb's arguments (the rest, its `run` among them, does not pickle).
FIT_OPTIONS = ("model", "neutral", "quality", "steps", "points", "seed", "unit", "resolution", "format")


def main(argv=None):
    """Runs one verb; returns the exit status (0 done, 1 an error the input caused, 2 bad arguments)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:
        return delegate(argv[0], argv[1:])
    args = parser().parse_args(argv)
    logging.basicConfig(format="imhead: %(message)s", level=logging.WARNING if args.quiet else logging.INFO,
                        stream=sys.stderr)
    if args.threads:
        parallel.set_threads(args.threads)
    try:
        args.run(args)
    except ImHeadError as error:
        print(f"imhead {args.verb}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # an output folder that is missing or not writable
        print(f"imhead {args.verb}: error: {error.filename or ''}: {error.strerror}", file=sys.stderr)
        return 1
    return args.status


def delegate(verb, argv):
    module = importlib.import_module(DELEGATED[verb][0])
    # Their argparse usage lines name the program from argv[0]: name it as it was called.
    sys.argv[0] = f"imhead {verb}"
    try:
        module.main(argv)
    except ImHeadError as error:
        print(f"imhead {verb}: error: {error}", file=sys.stderr)
        return 1
    return 0


# --- the runtime verbs -----------------------------------------------------------------------------
def generate(args):
    model = load_model(args)
    write_head(args, model, HeadState.generated(model, args.seed, args.variation))


def edit(args):
    model = load_model(args)
    state = load_state(args.params, model)
    if args.sliders is not None:
        state.set_sliders(model, args.region, args.sliders)
    elif args.randomize is not None:
        state.randomize_region(model, args.region, args.randomize, args.scale)
    elif args.copy_from is not None:
        state.copy_region(model, args.region, HeadState.load(args.copy_from))
    else:
        state.reset_region(model, args.region)
    write_head(args, model, state)


def express(args):
    model = load_model(args)
    state = load_state(args.params, model)
    if args.neutral:
        state.expression_values = {}
    if args.preset:
        state.set_preset(model, args.preset)
    state.set_expression(model, dict(parse_coefficient(text) for text in args.set))
    write_head(args, model, state)


def mesh(args):
    model = load_model(args)
    write_head(args, model, load_state(args.params, model))


def bake(args):
    out = Path(args.out)
    to_one_file = out.suffix.lower() in (".glb", ".gltf")
    if out.suffix and not to_one_file:
        raise ImHeadError(f"{out}: bake writes a folder (one mesh per expression) or a .glb/.gltf file")
    model = load_model(args)
    state = load_state(args.params, model)
    resolution = resolution_of(args, state)
    neutral = neutral_mesh(model, state, resolution, bar(args, "Meshing the head"))
    keys = bake_expressions(model, state, neutral, bar(args, "Baking the expressions"))
    names = list(model.expression_names)
    base = in_file_frame(neutral)
    if to_one_file:
        write_gltf(out, base, [in_file_frame(with_vertices(neutral, p)).vertices for p in keys.positions], names)
        written = f"{out}: the neutral head and {len(names)} morph targets"
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_mesh(out / f"{NEUTRAL_KEY}.{args.format}", base)
        for name, positions in zip(names, keys.positions):
            write_mesh(out / f"{name}.{args.format}", in_file_frame(with_vertices(neutral, positions)))
        written = f"{out}/: {NEUTRAL_KEY}.{args.format} and {len(names)} expression meshes"
    residual = keys.residual_summary_mm()
    print(f"{written}, {len(neutral.vertices)} vertices each; largest residual {residual['max']:.4f} mm")


def fit(args):
    model = load_model(args)
    source = Path(args.input)
    if source.is_dir():
        if args.out is None or args.out_mesh or args.out_json:
            raise ImHeadError("fitting a folder writes into a folder: give --out FOLDER (not --out-mesh/--out-json)")
        if args.processes > 1 and args.threads:
            raise ImHeadError("with --processes every worker fits on one thread: give --processes or --threads")
        args.status = fit_folder(args, model, source, Path(args.out))
        return
    if args.out is not None or args.processes > 1:
        raise ImHeadError("--out and --processes are for a folder of scans; for one scan give --out-mesh "
                          "and/or --out-json")
    if args.out_mesh:
        mesh_writer(args.out_mesh)
    state, result, placed = fit_scan(args, model, source, bar(args, "Fitting"))
    if args.out_mesh:
        write_mesh(args.out_mesh, placed)
        print(f"{args.out_mesh}: {describe(placed)}, on the scan in its coordinates")
    if args.out_json:
        state.save(args.out_json)
        print(f"{args.out_json}: the head's parameters and the fit")
    print(f"{source.name}: unit {result.unit}, residual {result.residual_mm:.3f} mm, {result.within_5mm:.0%} of "
          f"the points within 5 mm, {result.steps} steps, {result.seconds:.1f} s")


def fit_scan(args, model, path, progress):
    """(HeadState, FitResult, the head's mesh placed on the scan) of the scan in `path`; PoorFitError when
    the fit does not explain the scan. progress(fraction, message)."""
    points, normals = read_points(path)
    result = fitting.fit(model, points, normals, neutral=args.neutral, quality=args.quality, steps=args.steps,
                         n_points=args.points, seed=args.seed, unit=args.unit,
                         progress=lambda fraction, message: progress(0.9 * fraction, message)).require_explained()
    state = HeadState.fitted(model, result, path.name, args.resolution)
    surface = head_mesh(model, state, args.resolution,
                        lambda fraction: progress(0.9 + 0.1 * fraction, "Meshing the head"))
    return state, result, result.to_input(surface)


def fit_folder(args, model, folder, out):
    """Fits every scan in `folder`, writing <scan>.<format> and <scan>.json into `out`, and summary.json;
    a scan that cannot be fitted is reported and the others go on. With --processes N, N worker processes
    fit one scan each at a time. Returns the exit status."""
    scans = sorted(p for p in folder.iterdir() if p.suffix.lower() in SCAN_SUFFIXES and p.is_file())
    if not scans:
        raise ImHeadError(f"{folder}: no scans ({', '.join(SCAN_SUFFIXES)} files)")
    stems = [p.stem for p in scans]
    twins = sorted({s for s in stems if stems.count(s) > 1})
    if twins:
        raise ImHeadError(f"{folder}: scans of the same name would write the same files: {', '.join(twins)}")
    out.mkdir(parents=True, exist_ok=True)
    overall = bar(args, "", total=len(scans), unit="scans")
    if args.processes > 1:
        rows = fit_in_processes(args, scans, out, overall)
    else:
        rows = []
        for index, scan in enumerate(scans):
            def progress(fraction, message, index=index, scan=scan):
                overall((index + fraction) / len(scans), f"{scan.name}: {message}")
            rows.append(fit_into_folder(args, model, scan, out, progress))
            if not rows[-1]["fitted"]:
                overall((index + 1) / len(scans), f"{scan.name}: not fitted")
    failed = [row for row in rows if not row["fitted"]]
    (out / "summary.json").write_text(json.dumps({"scans": rows, "fitted": len(rows) - len(failed),
                                                  "failed": len(failed)}, indent=1))
    for row in rows:
        print(f"{row['scan']}: residual {row['residual_mm']:.3f} mm, {row['within_5mm']:.0%} within 5 mm"
              if row["fitted"] else f"{row['scan']}: not fitted: {row['error']}")
    print(f"{out}/summary.json: {len(rows) - len(failed)} of {len(rows)} scans fitted")
    return 1 if failed else 0


def fit_into_folder(args, model, scan, out, progress):
    """Fits one scan of a folder, writing <scan>.<format> and <scan>.json into `out`; its summary row."""
    try:
        state, result, placed = fit_scan(args, model, scan, progress)
    except ImHeadError as error:
        return {"scan": scan.name, "fitted": False, "error": str(error)}
    mesh_path, params_path = out / f"{scan.stem}.{args.format}", out / f"{scan.stem}.json"
    write_mesh(mesh_path, placed)
    state.save(params_path)
    return {"scan": scan.name, "fitted": True, "mesh": mesh_path.name, "params": params_path.name,
            **{key: state.fit[key] for key in ("unit", "residual_mm", "within_5mm", "seconds")}}


def fit_in_processes(args, scans, out, overall):
    """The scans fitted by args.processes worker processes, each on one core (one thread, one BLAS
    thread: parallel.use_one_core); their rows in the scans' order. A fit does not depend on the process
    it runs in, so the files are those of one process with --threads 1. overall(fraction, message) after
    each scan."""
    options = argparse.Namespace(**{name: getattr(args, name) for name in FIT_OPTIONS})
    # spawn: a fresh interpreter per worker, never a fork of a process that may hold threads (its workers').
    with ProcessPoolExecutor(min(args.processes, len(scans)), multiprocessing.get_context("spawn"),
                             initializer=start_fit_worker, initargs=(options,)) as pool:
        futures = [pool.submit(fit_in_worker, scan, out) for scan in scans]
        for done, future in enumerate(as_completed(futures), 1):
            row = future.result()
            overall(done / len(scans), f"{row['scan']}: {'fitted' if row['fitted'] else 'not fitted'}")
    return [future.result() for future in futures]


fit_worker = {}  # in a fit worker process: its options and the model, loaded once per process


def start_fit_worker(options):
    parallel.use_one_core()
    fit_worker.update(args=options, model=HeadModel.load(options.model))


def fit_in_worker(scan, out):
    return fit_into_folder(fit_worker["args"], fit_worker["model"], scan, out, lambda fraction, message: None)


# --- helpers ---------------------------------------------------------------------------------------
def load_model(args):
    return HeadModel.load(args.model)


def load_state(path, model):
    state = HeadState.load(path)
    state.check_model(model)
    return state


def resolution_of(args, state):
    """The resolution asked for, else the one the head was last meshed at, else DEFAULT_RESOLUTION."""
    return args.resolution or state.resolution or DEFAULT_RESOLUTION


def write_head(args, model, state):
    """Writes what --out-mesh and --out-json ask for: the head's mesh (its edits and expression) and its
    parameters; the mesh's resolution is recorded in the parameters."""
    if args.out_mesh:
        mesh_writer(args.out_mesh)  # an unknown extension fails before the meshing
    state.resolution = resolution_of(args, state)
    if args.out_mesh:
        surface = head_mesh(model, state, state.resolution, bar(args, "Meshing the head"))
        write_mesh(args.out_mesh, in_file_frame(surface))
        print(f"{args.out_mesh}: {describe(surface)}")
    if args.out_json:
        state.save(args.out_json)
        print(f"{args.out_json}: the head's parameters")


def describe(surface):
    return f"{len(surface.vertices)} vertices, {len(surface.faces)} faces, closed: {is_closed(surface)}"


def bar(args, label, total=None, unit=""):
    """A progress callback: a progress line on stderr, or nothing with --quiet."""
    if args.quiet:
        return lambda fraction, message=None: None
    return progress_bar(total, unit, label=label)


def parse_coefficient(text):
    name, separator, value = text.partition("=")
    try:
        if not separator:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise ImHeadError(f"--set takes NAME=VALUE (e.g. jawOpen=0.5), got {text!r}") from None


# --- arguments -------------------------------------------------------------------------------------
def parser():
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", default=str(BUNDLED_MODEL), help="model file (default: the bundled one)")
    common.add_argument("--quiet", action="store_true", help="no progress bars or notes on stderr")
    common.add_argument("--threads", type=int, help="worker threads (default: every core this process may use)")
    outputs = argparse.ArgumentParser(add_help=False)
    outputs.add_argument("--out-mesh", help="the head's mesh: .obj, .ply, .glb or .gltf")
    outputs.add_argument("--out-json", help="the head's parameters (JSON), for edit, express, bake, mesh")
    outputs.add_argument("--resolution", type=int, help="marching-cubes grid size of the mesh (default: the "
                         f"resolution in the parameters, else {DEFAULT_RESOLUTION}; the add-on's Preview is 128)")
    params = argparse.ArgumentParser(add_help=False)
    params.add_argument("--params", required=True, help="the head's parameters (JSON from generate, edit, fit...)")

    top = argparse.ArgumentParser(prog="imhead", description=__doc__.split("\n\n")[0])
    verbs = top.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name, run, help, parents=(), needs_output=True):
        sub = verbs.add_parser(name, parents=[common, *parents], help=help, description=help)
        sub.set_defaults(run=run, status=0)
        if needs_output:
            sub.set_defaults(run=lambda args: require_output(sub, args) or run(args))
        return sub

    sub = verb("generate", generate, "a head from a seed: its mesh and parameters", [outputs])
    sub.add_argument("--seed", type=int, default=0, help="which head: the same seed gives the same head")
    sub.add_argument("--variation", type=float, default=1.0,
                     help="0 = the mean head, 1 = a typical head, 2 = a striking one")

    sub = verb("edit", edit, "edit one region of a head: sliders, randomize, copy from another head, reset",
               [params, outputs])
    sub.add_argument("--region", required=True, help="the region (nose, eyes, jaw, ears, ...)")
    how = sub.add_mutually_exclusive_group(required=True)
    how.add_argument("--sliders", type=float, nargs="+", metavar="SD",
                     help="slider values: standard deviations along the region's principal directions")
    how.add_argument("--randomize", type=int, metavar="SEED", help="a random plausible region of this seed")
    how.add_argument("--copy-from", metavar="JSON", help="the region of another head (its parameters file)")
    how.add_argument("--reset", action="store_true", help="back to the head's own region")
    sub.add_argument("--scale", type=float, default=1.0, help="--randomize: standard deviations (default 1)")

    sub = verb("express", express, "give a head an expression: ARKit coefficients by name, or a preset",
               [params, outputs])
    sub.add_argument("--preset", choices=sorted(PRESETS), help="replace the expression by a preset")
    sub.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                     help="one ARKit coefficient, 0..1 (e.g. jawOpen=0.5; repeat the option for more)")
    sub.add_argument("--neutral", action="store_true", help="start from the neutral face")

    sub = verb("mesh", mesh, "mesh a head's parameters as they are (edits and expression)", [params, outputs])

    sub = verb("bake", bake, "the expressions as meshes of one topology: a folder of one file each, or "
               "a glTF with morph targets", [params], needs_output=False)
    sub.add_argument("--out", required=True, help="a folder, or a .glb/.gltf file")
    sub.add_argument("--format", choices=("obj", "ply"), default="obj", help="the folder's mesh files")
    sub.add_argument("--resolution", type=int, help=f"grid size (default: the parameters', else {DEFAULT_RESOLUTION})")

    sub = verb("fit", fit, "fit the model to a scan (.ply, .obj, .npy points), or to every scan in a folder",
               needs_output=False)
    sub.add_argument("--input", required=True, help="a scan, or a folder of scans")
    sub.add_argument("--out-mesh", help="one scan: the fitted head on the scan (.obj, .ply, .glb, .gltf)")
    sub.add_argument("--out-json", help="one scan: the head's parameters and the fit")
    sub.add_argument("--out", help="a folder of scans: where <scan>.<format>, <scan>.json and summary.json go")
    sub.add_argument("--format", choices=("obj", "ply", "glb"), default="obj", help="--out: the mesh files")
    sub.add_argument("--processes", type=positive, default=1,
                     help="--out: fit this many scans at once, each in a worker process on one core (default 1)")
    sub.add_argument("--neutral", action="store_true", help="keep the expression neutral")
    sub.add_argument("--quality", choices=sorted(fitting.QUALITY_STEPS), default="fast")
    sub.add_argument("--steps", type=int, help="refinement steps (overrides --quality)")
    sub.add_argument("--points", type=int, default=10000, help="points used for the fit")
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument("--unit", choices=sorted(fitting.UNITS), help="the scan's unit (default: guessed)")
    sub.add_argument("--resolution", type=int, default=DEFAULT_RESOLUTION, help="grid size of the mesh")

    for name, (module, help) in DELEGATED.items():
        verbs.add_parser(name, help=f"{help}: python -m {module}'s arguments (--help lists them)", add_help=False)
    return top


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def require_output(sub, args):
    if not (args.out_mesh or args.out_json):
        sub.error("give --out-mesh and/or --out-json")
