"""Install a toppo-jax GPU bundle (``make gpu-bundle``) on an offline machine: standard library only.

    python3 install.py TARGET [--parts DIR]

Checks every part against ``SHA256SUMS`` (names a missing or damaged part before anything is
written), streams the parts back into one archive, installs its wheels with
``pip install --no-index --no-deps --no-compile --target TARGET/site`` (pip also refuses a wheel
built for another Python), puts the task tables into ``TARGET/toppo_cache``, checks that everything
the check imports can be imported with ``PYTHONPATH=TARGET/site`` (the bundled packages and the
machine's own jax, flax, optax, chex, orbax-checkpoint and rich), and prints the two exports and
the check's command. TARGET must be empty or absent. Exit codes: 0 installed, 1 failed (one line why).

This file is copied into every bundle as ``install.py``; it imports nothing from the repository.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

SUMS = "SHA256SUMS"
# What `python -m experiments.gpu_check` imports beyond the standard library and numpy.
IMPORTS = ("jax", "flax", "optax", "chex", "orbax.checkpoint", "rich", "mujoco", "mujoco.mjx", "warp", "metaworld", "tyro", "yaml")


class BundleError(RuntimeError):
    pass


def read_sums(folder: Path) -> list[tuple[str, str]]:
    path = folder / SUMS
    if not path.exists():
        raise BundleError(f"{path} not found: bring SHA256SUMS with the parts")
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(digest, name.lstrip("*")) for digest, name in rows]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_parts(folder: Path) -> tuple[list[Path], str]:
    """The parts in order and the archive's digest; BundleError naming every missing or damaged part."""
    sums = read_sums(folder)
    archive = [(d, n) for d, n in sums if ".part-" not in n]
    parts = sorted((n, d) for d, n in sums if ".part-" in n)
    if len(archive) != 1 or not parts:
        raise BundleError(f"{folder / SUMS} must list one archive and its parts")
    bad = []
    for name, digest in parts:
        p = folder / name
        if not p.exists():
            bad.append(f"{name} missing")
        elif sha256(p) != digest:
            bad.append(f"{name} damaged (sha256 differs)")
    if bad:
        raise BundleError(f"{len(bad)} of {len(parts)} parts unusable in {folder}: " + "; ".join(bad))
    return [folder / n for n, _ in parts], archive[0][0]


class Chain(io.RawIOBase):
    """The parts read one after the other as one stream, hashed on the way."""

    def __init__(self, paths: list[Path]):
        self.paths, self.f, self.hash = list(paths), None, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        while True:
            if self.f is None:
                if not self.paths:
                    return 0
                self.f = open(self.paths.pop(0), "rb")
            n = self.f.readinto(buf)
            if n:
                self.hash.update(memoryview(buf)[:n])
                return n
            self.f.close()
            self.f = None


def install(parts_dir: Path, target: Path, python: str = sys.executable, no_site: bool = False, log=print) -> dict:
    """Check, reassemble and install with this interpreter's pip; check the imports under `python`
    (with -S when `no_site`: only PYTHONPATH and the standard library)."""
    parts, digest = check_parts(parts_dir)
    if target.exists() and any(target.iterdir()):
        raise BundleError(f"target {target} is not empty")
    staging = target / ".unpacked"
    staging.mkdir(parents=True)
    stream = Chain(parts)
    with tarfile.open(fileobj=io.BufferedReader(stream, 1 << 20), mode="r|gz") as tar:
        tar.extractall(staging, filter="data") if hasattr(tarfile, "data_filter") else tar.extractall(staging)
    if stream.hash.hexdigest() != digest:
        raise BundleError("the reassembled archive's sha256 differs from SHA256SUMS")
    manifest = json.loads((staging / "manifest.json").read_text())
    wheels = sorted(glob.glob(str(staging / "wheels" / "*.whl")))
    log(f"installing {len(wheels)} wheels into {target / 'site'}")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
           "--disable-pip-version-check", "--target", str(target / "site"), *wheels]  # fmt: skip
    done = subprocess.run(pip, capture_output=True, text=True)
    if done.returncode != 0:
        raise BundleError(f"pip install failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    shutil.move(str(staging / "toppo_cache"), str(target / "toppo_cache"))
    shutil.move(str(staging / "manifest.json"), str(target / "manifest.json"))
    shutil.rmtree(staging)
    missing = check_imports(target / "site", python, no_site)
    if missing:
        raise BundleError("installed, but these cannot be imported with PYTHONPATH=" + str(target / "site") + ": " + "; ".join(missing))
    return manifest


def check_imports(site: Path, python: str, no_site: bool = False) -> list[str]:
    """Modules of IMPORTS that fail to import under `python` with `site` first on the path."""
    code = ("import importlib, json, sys\nbad = []\nfor m in sys.argv[1:]:\n    try:\n        importlib.import_module(m)\n"
            "    except Exception as e:\n        bad.append(f'{m}: {type(e).__name__}: {e}')\nprint(json.dumps(bad))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    flags = ["-S"] if no_site or sys.flags.no_site else []
    done = subprocess.run([python, *flags, "-c", code, *IMPORTS], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return [f"import check crashed: {done.stderr.strip()[-500:]}"]
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python3 install.py", description=__doc__.split("\n\n")[0])
    p.add_argument("target", help="empty folder to install into (site/, toppo_cache/, manifest.json)")
    p.add_argument("--parts", default=str(Path(__file__).resolve().parent), help="folder with the parts and SHA256SUMS (default: this file's)")
    p.add_argument("--python", default=sys.executable, help="the interpreter that will run the check (import check; default: this one)")
    p.add_argument("--no-site", action="store_true", help="import check with python -S (only PYTHONPATH and the standard library)")
    args = p.parse_args(argv)
    target = Path(args.target).resolve()
    try:
        manifest = install(Path(args.parts), target, args.python, args.no_site)
    except BundleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"installed toppo-jax GPU bundle ({manifest['python']}, commit {manifest.get('commit', '?')[:12]}) into {target}\n"
          f"  export PYTHONPATH={target / 'site'}:/path/to/toppo-jax\n  export TOPPO_CACHE_DIR={target / 'toppo_cache'}\n"
          f"  cd /path/to/toppo-jax && python3 -m experiments.gpu_check")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
