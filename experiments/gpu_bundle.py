"""``make gpu-bundle`` (``python -m experiments.gpu_bundle``): what an offline GPU machine needs for the check.

    python -m experiments.gpu_bundle [--have experiments/gpu_targets/nvidia-h200.txt] [--python-version 3.12]
                                     [--part-mib 60] [--tasks mt10 --tasks mt50] [--out .cache/gpu_bundle/py3.12]

The target (a cluster node, the workplace's H200) has no network, a Python whose own jax runs on its
GPU (any CUDA jax: it is never replaced), flax, optax, chex, orbax-checkpoint and rich, and takes at
most ~60 MiB per transfer. The bundle is:

* wheels, for ``--python-version`` on manylinux x86_64, of the locked runtime dependencies
  (``uv.lock``, markers evaluated for that Python on Linux) that ``--have`` (the target's package
  names, one a line, ``pip list --format=freeze`` output works) lacks; each download is checked
  against the lock's sha256. Left out because a GPU check does not need them: the target's own
  jax/jaxlib (and anything only they need), ``wandb`` (imported only when logging to it; the check
  trains with ``--no-wandb``), ``imageio-ffmpeg`` (videos; ``--no-videos``), ``mujoco-warp`` (the
  ``warp`` backend imports the copy inside ``mujoco-mjx``), and from ``warp-lang`` its CPU compiler
  ``warp/bin/warp-clang.so`` (Warp's CPU device only; GPU kernels go through NVRTC inside ``warp.so``;
  ``--keep-warp-cpu`` keeps it);
* the task tables the check reads (goal and reset tables of ``--tasks``, from ``$TOPPO_CACHE_DIR``,
  built here from official Meta-World if missing), so no table is built there; ``metaworld`` is still
  brought: parity runs its scripted experts and official envs, and the task models are compiled from
  its XML files;
* ``manifest.json`` (versions, sizes, what was left out, the repository commit whose task code the
  tables were built with: the target must run the same commit).

All of it is one ``.tar.gz`` split into parts of at most ``--part-mib`` MiB, written with
``SHA256SUMS`` and ``install.py`` (``experiments/gpu_bundle_install.py``: checks, reassembles, installs
into an empty folder, checks the imports). Bring every file of ``--out`` over, then
``python3 install.py TARGET``. The repository itself travels separately (git).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHIVE = "toppo-gpu-bundle.tar.gz"
MIB = 1 << 20
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
# Never brought: the target's jax is the one that runs its GPU (mujoco-mjx and orbax name them too).
TARGET_OWN = {"jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt", "jax-cuda13-plugin", "jax-cuda13-pjrt"}
NOT_NEEDED = {
    "wandb": "imported only when logging to wandb; the check trains with --no-wandb",
    "imageio-ffmpeg": "writes videos only; the check trains with --no-videos",
    "mujoco-warp": "the warp backend imports the copy vendored in mujoco-mjx (mujoco.mjx.third_party.mujoco_warp)",
}
WARP_CPU_COMPILER = "warp/bin/warp-clang.so"


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_have(path: Path) -> set[str]:
    """Package names from a file: one a line; `name==1.0`, `name 1.0` (pip list) and comments are fine."""
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith(("Package", "---")):
            names.add(norm(re.split(r"[\s=<>!~;\[@]", line, maxsplit=1)[0]))
    return names


def lock_closure(python_version: str, have: set[str], lock: Path = ROOT / "uv.lock") -> tuple[list[dict], dict]:
    """Locked packages the project needs at run time on Linux x86_64 under `python_version`, minus what
    the target has (not followed further), the target's own jax and NOT_NEEDED; and why each left-out
    direct dependency was left out."""
    from packaging.markers import Marker

    full = python_version if python_version.count(".") == 2 else python_version + ".0"
    env = {"python_version": python_version, "python_full_version": full, "sys_platform": "linux", "platform_system": "Linux",
           "platform_machine": "x86_64", "os_name": "posix", "implementation_name": "cpython", "platform_python_implementation": "CPython"}  # fmt: skip
    packages = tomllib.loads(lock.read_text())["package"]
    by_name: dict[str, list[dict]] = {}
    for p in packages:
        by_name.setdefault(p["name"], []).append(p)
    project = next(p for p in packages if p.get("source", {}).get("virtual") == "." or p["name"] == "toppo-jax")

    def applies(dep: dict) -> bool:
        return "marker" not in dep or Marker(dep["marker"]).evaluate(env)

    def resolve(dep: dict) -> dict:
        options = by_name[dep["name"]]
        return next(p for p in options if p["version"] == dep["version"]) if "version" in dep else options[0]

    left_out = {}
    chosen: dict[str, dict] = {}
    todo = [d for d in project.get("dependencies", []) if applies(d)]
    while todo:
        dep = todo.pop()
        name = dep["name"]
        if name in TARGET_OWN:
            left_out[name] = "the target's own (its jax runs its GPU)"
            continue
        if name in NOT_NEEDED:
            left_out[name] = NOT_NEEDED[name]
            continue
        if norm(name) in have:
            continue
        pkg = resolve(dep)
        deps = [d for d in pkg.get("dependencies", []) if applies(d)]
        for extra in dep.get("extra", []):
            deps += [d for d in pkg.get("optional-dependencies", {}).get(extra, []) if applies(d)]
        if name not in chosen:
            chosen[name] = pkg
            todo += deps
        elif dep.get("extra"):
            todo += deps
    return sorted(chosen.values(), key=lambda p: p["name"]), left_out


def wheel_for(pkg: dict, python_version: str) -> dict:
    """The lock's wheel of `pkg` that `pip download --platform PLATFORMS` picks for CPython `python_version`:
    an exact cpXY wheel before abi3/py3 ones, then the earliest platform of PLATFORMS ('any' last)."""
    cp = "cp" + python_version.replace(".", "")
    ranked = []
    for w in pkg.get("wheels", []):
        fname = w["url"].rsplit("/", 1)[1]
        pyt, abi, plat = fname[:-4].split("-")[-3:]
        plats = plat.split(".")
        rank_plat = 0 if plat == "any" else min((PLATFORMS.index(t) for t in plats if t in PLATFORMS), default=None)
        if rank_plat is None:
            continue
        pys = pyt.split(".")
        if cp in pys:
            rank_py = 0
        elif abi == "abi3" and any(t.startswith("cp3") and int(t[3:]) <= int(cp[3:]) for t in pys):
            rank_py = 1
        elif any(t in ("py3", "py2") for t in pys) and abi == "none":
            rank_py = 2
        else:
            continue
        ranked.append((rank_py, len(PLATFORMS) if plat == "any" else rank_plat, fname, w))
    if not ranked:
        raise SystemExit(f"error: uv.lock has no {cp} manylinux x86_64 wheel of {pkg['name']} {pkg['version']}")
    _, _, fname, w = min(ranked, key=lambda r: r[:3])
    return {"file": fname, "sha256": w["hash"].split(":", 1)[1], "size": w.get("size")}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pip_command() -> list[str]:
    """A pip to download with: this interpreter's, else the uv bootstrap venv's (.tools), else python3's."""
    for python in (sys.executable, str(ROOT / ".tools" / "bin" / "python"), shutil.which("python3") or "python3"):
        if Path(python).exists() and subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode == 0:
            return [python, "-m", "pip"]
    raise SystemExit("error: no pip found (tried this Python, .tools/bin/python and python3)")


def download(wheels: list[dict], names: list[str], python_version: str, wheel_dir: Path, log) -> None:
    """Fetch the wheels not already in `wheel_dir` (one pip call), then check every one against the lock."""
    wheel_dir.mkdir(parents=True, exist_ok=True)
    missing = [f"{n}=={w['version']}" for n, w in zip(names, wheels) if not (wheel_dir / w["file"]).exists()]
    if missing:
        log(f"downloading {len(missing)} wheels for Python {python_version}: {' '.join(missing)}")
        plats = [a for p in PLATFORMS for a in ("--platform", p)]
        cmd = [*pip_command(), "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", python_version,
               "--implementation", "cp", *plats, "-d", str(wheel_dir), *missing]  # fmt: skip
        subprocess.run(cmd, check=True)
    for w in wheels:
        path = wheel_dir / w["file"]
        if not path.exists():
            raise SystemExit(f"error: {w['file']} not downloaded (pip picked another file?); look in {wheel_dir}")
        if sha256(path) != w["sha256"]:
            raise SystemExit(f"error: {path} does not match uv.lock's sha256")


def strip_wheel(src: Path, dst: Path, drop: str) -> int:
    """Copy a wheel without one file (its RECORD line removed too); the bytes left out."""
    dropped = 0
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zout:
        for item in zin.infolist():
            if item.filename == drop:
                dropped = item.compress_size
                continue
            data = zin.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                data = b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(drop.encode() + b","))
            zout.writestr(item, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    if not dropped:
        raise SystemExit(f"error: {src.name} has no {drop}")
    return dropped


def table_files(tasks: list[str], seed: int, log) -> list[Path]:
    """The cached tables (npz under $TOPPO_CACHE_DIR) that building each task set's env reads, built if
    missing: recorded from the interpreter's file-open audit events while the envs are made."""
    import envs
    from envs import assets

    cache = assets.cache_dir().resolve()
    opened: set[Path] = set()
    recording = [True]  # an audit hook cannot be removed: it stops recording instead

    def hook(event, args):
        if recording[0] and event == "open" and isinstance(args[0], (str, os.PathLike)) and str(args[0]).endswith(".npz"):
            path = Path(args[0]).resolve()
            if path.parent == cache:  # a table being built is written to NAME.tmp<pid>.npz, then renamed to NAME.npz
                opened.add(path.with_name(re.sub(r"\.tmp\d+\.npz$", ".npz", path.name)))

    sys.addaudithook(hook)
    try:
        for spec in tasks:
            t0 = time.perf_counter()
            envs.make_multitask(spec, envs_per_task=1, seed=seed, impl="mujoco")
            log(f"tables of {spec}: {time.perf_counter() - t0:.1f}s")
    finally:
        recording[0] = False
    return sorted(opened)


def git_commit() -> str:
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "envs"], capture_output=True, text=True).stdout.strip()
    return done.stdout.strip() + ("+dirty-envs" if dirty else "")


def split(archive: Path, part_bytes: int) -> list[Path]:
    parts = []
    with open(archive, "rb") as f:
        for i, block in enumerate(iter(lambda: f.read(part_bytes), b"")):
            part = archive.with_name(f"{archive.name}.part-{i:02d}")
            part.write_bytes(block)
            parts.append(part)
    return parts


def build(args, log=print) -> dict:
    t_start = time.perf_counter()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    stage = out / "stage"
    (stage / "wheels").mkdir(parents=True)
    (stage / "toppo_cache").mkdir()
    have = read_have(Path(args.have))
    pkgs, left_out = lock_closure(args.python_version, have)
    wheels = [{**wheel_for(p, args.python_version), "name": p["name"], "version": p["version"]} for p in pkgs]
    wheel_dir = Path(args.wheel_dir or ROOT / ".cache" / "gpu_bundle" / f"wheels-py{args.python_version}")
    download(wheels, [p["name"] for p in pkgs], args.python_version, wheel_dir, log)
    for w in wheels:
        src, dst = wheel_dir / w["file"], stage / "wheels" / w["file"]
        if w["name"] == "warp-lang" and not args.keep_warp_cpu:
            w["left_out"] = {WARP_CPU_COMPILER: strip_wheel(src, dst, WARP_CPU_COMPILER)}
            log(f"warp-lang: left out {WARP_CPU_COMPILER} ({w['left_out'][WARP_CPU_COMPILER] / MIB:.1f} MiB compressed)")
        else:
            shutil.copy2(src, dst)
        w["bundled_bytes"] = dst.stat().st_size
    tables = table_files(args.tasks, args.seed, log)
    for t in tables:
        shutil.copy2(t, stage / "toppo_cache" / t.name)
    manifest = {
        "date": time.strftime("%Y-%m-%d"), "python": f"cp{args.python_version.replace('.', '')}", "platform": "manylinux x86_64",
        "commit": git_commit(), "have": str(args.have), "tasks": args.tasks, "seed": args.seed,
        "wheels": wheels, "left_out": left_out, "tables": [t.name for t in tables],
        "tables_bytes": sum(t.stat().st_size for t in tables),
    }  # fmt: skip
    (stage / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    archive = out / ARCHIVE
    with tarfile.open(archive, "w:gz", compresslevel=6) as tar:
        for sub in ("manifest.json", "wheels", "toppo_cache"):
            tar.add(stage / sub, arcname=sub)
    shutil.rmtree(stage)
    parts = split(archive, int(args.part_mib * MIB))
    sums = [f"{sha256(archive)}  {archive.name}"] + [f"{sha256(p)}  {p.name}" for p in parts]
    archive.unlink()
    (out / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    shutil.copy2(Path(__file__).with_name("gpu_bundle_install.py"), out / "install.py")
    manifest.update(parts=[{"file": p.name, "bytes": p.stat().st_size} for p in parts], build_s=time.perf_counter() - t_start)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    total = sum(p.stat().st_size for p in parts)
    log(f"{len(wheels)} wheels ({sum(w['bundled_bytes'] for w in wheels) / MIB:.1f} MiB) + {len(tables)} tables "
        f"({manifest['tables_bytes'] / MIB:.1f} MiB) -> {len(parts)} parts, {total / MIB:.1f} MiB "
        f"(largest {max(p.stat().st_size for p in parts) / MIB:.1f} MiB) in {out} ({manifest['build_s']:.0f}s)")
    for name, why in sorted(left_out.items()):
        log(f"  left out {name}: {why}")
    log(f"bring every file of {out} (parts, SHA256SUMS, install.py); there: python3 install.py TARGET")
    return manifest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m experiments.gpu_bundle", description=__doc__.split("\n\n")[0])
    p.add_argument("--have", default=str(ROOT / "experiments" / "gpu_targets" / "nvidia-h200.txt"),
                   help="the target's installed package names (default: the workplace's nvidia-h200 image)")
    p.add_argument("--python-version", default="3.12", help="the target's Python (major.minor)")
    p.add_argument("--part-mib", type=float, default=60.0, help="largest part in MiB (one transfer)")
    p.add_argument("--tasks", action="append", default=None,
                   help="a task set whose tables the check reads (mt10, mt50, reach,push...); repeat for more (default: mt10 and mt50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="default: .cache/gpu_bundle/py<version> (git-ignored)")
    p.add_argument("--wheel-dir", default=None, help="downloaded wheels are kept and reused here (default: .cache/gpu_bundle/wheels-py<version>)")
    p.add_argument("--keep-warp-cpu", action="store_true", help=f"keep {WARP_CPU_COMPILER} (Warp's CPU device; +~30 MiB)")
    args = p.parse_args(argv)
    if args.part_mib <= 0:
        p.error(f"--part-mib must be positive, got {args.part_mib}")
    if not re.fullmatch(r"3\.\d+", args.python_version):
        p.error(f"--python-version must be major.minor like 3.12, got {args.python_version!r}")
    args.tasks = args.tasks or ["mt10", "mt50"]
    args.out = args.out or str(ROOT / ".cache" / "gpu_bundle" / f"py{args.python_version}")
    build(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
