"""The offline GPU bundle (experiments/gpu_bundle.py, experiments/gpu_bundle_install.py): what it brings
for the workplace's H200 image, parts that reassemble (and a damaged or missing part named), and, as
a slow test, a bundle for this Python installed into an empty folder that runs the CPU-sized check
with the venv's mujoco, warp, metaworld... hidden."""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from experiments import gpu_bundle
from experiments import gpu_bundle_install as installer

ROOT = Path(__file__).resolve().parents[1]
H200 = ROOT / "experiments" / "gpu_targets" / "nvidia-h200.txt"


def test_what_the_h200_image_needs_from_the_lock():
    pkgs, left_out = gpu_bundle.lock_closure("3.12", gpu_bundle.read_have(H200))
    assert [p["name"] for p in pkgs] == [
        "docstring-parser", "farama-notifications", "glfw", "gymnasium", "metaworld", "mujoco", "mujoco-mjx", "pyopengl",
        "trimesh", "typeguard", "tyro", "warp-lang", "websockets",
    ]  # fmt: skip
    assert {"jax", "jaxlib", "wandb", "imageio-ffmpeg", "mujoco-warp"} <= set(left_out)
    mujoco = next(p for p in pkgs if p["name"] == "mujoco")
    assert gpu_bundle.wheel_for(mujoco, "3.12")["file"].startswith("mujoco-3.16.0-cp312-cp312-manylinux")
    assert gpu_bundle.wheel_for(mujoco, "3.11")["file"].startswith("mujoco-3.16.0-cp311-cp311-manylinux")


def test_have_lists_in_pip_formats():
    text = "# comment\nPackage Version\n------- -------\nJax 0.11.2\norbax_checkpoint==0.12.0\nrich\n"
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"have-{os.getpid()}.txt"
    path.write_text(text)
    try:
        assert gpu_bundle.read_have(path) == {"jax", "orbax-checkpoint", "rich"}
    finally:
        path.unlink()


def _parts(tmp_path: Path, payload: dict[str, bytes], part_bytes: int) -> Path:
    folder = tmp_path / "bundle"
    folder.mkdir()
    archive = folder / gpu_bundle.ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in payload.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    parts = gpu_bundle.split(archive, part_bytes)
    sums = [f"{gpu_bundle.sha256(archive)}  {archive.name}"] + [f"{gpu_bundle.sha256(p)}  {p.name}" for p in parts]
    archive.unlink()
    (folder / installer.SUMS).write_text("\n".join(sums) + "\n")
    return folder


def test_parts_reassemble_and_a_damaged_or_missing_part_is_named(tmp_path):
    payload = {"manifest.json": b"{}", "toppo_cache/t.npz": os.urandom(5000)}
    folder = _parts(tmp_path, payload, part_bytes=1024)
    parts, digest = installer.check_parts(folder)
    assert len(parts) >= 5 and all(p.stat().st_size <= 1024 for p in parts)
    stream = installer.Chain(parts)
    with tarfile.open(fileobj=io.BufferedReader(stream), mode="r|gz") as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar}
    assert got == payload and stream.hash.hexdigest() == digest
    data = bytearray(parts[2].read_bytes())
    data[10] ^= 0xFF
    parts[2].write_bytes(bytes(data))
    parts[3].unlink()
    with pytest.raises(installer.BundleError, match=rf"2 of {len(parts)} parts unusable.*{parts[2].name} damaged.*{parts[3].name} missing"):
        installer.check_parts(folder)


def _hidden_site(venv_site: Path, hide: set[str], dest: Path) -> Path:
    """A site folder of links to venv_site's entries, less those of the distributions in `hide`."""
    owned: dict[str, set[str]] = {}
    for info in venv_site.glob("*.dist-info"):
        name = gpu_bundle.norm(info.name.rsplit("-", 1)[0])
        record = info / "RECORD"
        tops = {line.split(",")[0].split("/")[0] for line in record.read_text().splitlines()} if record.exists() else set()
        owned[name] = {t for t in tops if t and not t.startswith("..")} | {info.name}
    hidden = set().union(*(owned.get(gpu_bundle.norm(n), set()) for n in hide))
    dest.mkdir()
    for entry in venv_site.iterdir():
        if entry.name not in hidden and not entry.name.endswith(".pth"):
            (dest / entry.name).symlink_to(entry)
    return dest


@pytest.mark.slow
def test_bundle_installs_into_an_empty_folder_and_runs_the_tiny_check(tmp_path):
    """Slow (minutes: ~190 MiB of wheels built into a bundle, installed, then the whole CPU-sized check):
    a bundle for this Python (wheels kept in .cache/gpu_bundle/wheels-py3.X after the first download)."""
    pyver = f"{sys.version_info.major}.{sys.version_info.minor}"
    tools_python = ROOT / ".tools" / "bin" / "python"  # the venv has no pip; the uv bootstrap venv has
    if not tools_python.exists():
        pytest.skip("no .tools/bin/python with pip (make install creates it)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "bundle"
    build = [sys.executable, "-m", "experiments.gpu_bundle", "--python-version", pyver, "--have", str(H200), "--out", str(out),
             "--part-mib", "40", "--tasks", "reach", "--tasks", "reach,push"]  # fmt: skip
    done = subprocess.run(build, cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(p["bytes"] <= 40 * 2**20 for p in manifest["parts"]) and len(manifest["parts"]) >= 4
    venv_site = Path(next(p for p in sys.path if p.endswith("site-packages")))
    hide = {w["name"] for w in manifest["wheels"]} | set(gpu_bundle.NOT_NEEDED)
    site = _hidden_site(venv_site, hide, tmp_path / "venv-site-less-bundle")
    target = tmp_path / "empty" / "target"
    check_env = {**os.environ, "PYTHONPATH": str(site)}
    done = subprocess.run([str(tools_python), str(out / "install.py"), str(target), "--python", sys.executable, "--no-site"],
                          env=check_env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"export TOPPO_CACHE_DIR={target / 'toppo_cache'}" in done.stdout
    tables = sorted(p.name for p in (target / "toppo_cache").glob("*.npz"))
    assert tables == sorted(manifest["tables"]) and tables
    run_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target / "site"), str(site), str(ROOT)]),
               "TOPPO_CACHE_DIR": str(target / "toppo_cache")}  # fmt: skip
    report_dir = tmp_path / "check"
    done = subprocess.run([sys.executable, "-S", "-m", "experiments.gpu_check", "--tiny", "--out", str(report_dir)], cwd=ROOT,
                          env=run_env, capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((report_dir / "gpu_check.json").read_text())
    origins = report["steps"]["device"]["result"]["imported_from"]
    for dist in ("mujoco", "warp-lang", "metaworld"):
        assert origins[dist] == str(target / "site"), (dist, origins[dist])
    assert origins["jax"] == str(site)
    # every table the check read came with the bundle: none was built there
    assert sorted(p.name for p in (target / "toppo_cache").glob("*.npz")) == tables
    assert hashlib.sha256((out / "install.py").read_bytes()).digest() == hashlib.sha256(
        (ROOT / "experiments" / "gpu_bundle_install.py").read_bytes()).digest()
