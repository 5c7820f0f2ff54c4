"""Build, lock and push the knlp container images, one per GPU target.

    bazel run //containers:image -- list
    bazel run //containers:image -- build h100            (needs registry access)
    bazel run //containers:image -- build h100 --layer-only   (works offline)
    bazel run //containers:image -- build h100 --dry-run  (prints the buildah command)
    bazel run //containers:image -- push h100             (records the digest)
    bazel run //containers:image -- lock [--check]        (re-resolves the base digest)

Every version, digest and architecture comes from tools/bazel/gpu_targets.bzl,
containers/images.bzl and containers/images_lock.bzl (through the generated
images.json); this script
only stages a build context and calls buildah. The context holds `knlp/`, the
workspace files that decide the toolchain (setup.sh, the Python locks, the Bazel
version and rules, the GPU target table), with fixed modes, so two builds from two
checkouts are byte-identical and, with `--timestamp 0`, give the same image ID.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
IMAGE_REF_RE = re.compile(r"^docker://[a-z0-9.:/_-]+@sha256:[0-9a-f]{64}$")
LOCK_FILE = "containers/images_lock.bzl"


class ImageError(Exception):
    """A failure with a message meant for the user."""


def load_manifest(path):
    path = Path(path)
    if not path.exists():
        raise ImageError(
            f"no target manifest at {path}; run through `bazel run //containers:image`"
        )
    return json.loads(path.read_text())


def read_file_list(path):
    path = Path(path)
    if not path.exists():
        raise ImageError(
            f"no toolchain file list at {path}; run through `bazel run //containers:image`"
        )
    return path.read_text().split()


def target_entry(manifest, target):
    if target not in manifest["targets"]:
        known = ", ".join(sorted(manifest["targets"]))
        raise ImageError(f"unknown target {target!r}; known targets: {known}")
    return manifest["targets"][target]


def base_ref(manifest):
    base = manifest["base_image"]
    return f"{base['repository']}@{base['digest']}"


def build_args(manifest, target):
    """The ARG values of the target's Containerfile, all from the GPU target table."""
    p = target_entry(manifest, target)
    toolkit = manifest["toolkits"][p["vendor"]]
    args = {
        "BASE_IMAGE": base_ref(manifest),
        "DEBIAN_SNAPSHOT": manifest["image_common"]["debian_snapshot"],
        "TOOLKIT_PACKAGES": " ".join(toolkit["packages"]),
        "TOOLKIT_VERSION": toolkit["version"],
        "PIP_LOCK": toolkit["pip_lock"],
        "VENV_ROOT": manifest["image_common"]["venv_root"],
    }
    if toolkit["apt_repo"]:
        args["TOOLKIT_REPO"] = toolkit["apt_repo"]
        args["TOOLKIT_KEY_FINGERPRINT"] = toolkit["apt_key_fingerprint"]
    return args


def labels(manifest, target):
    """Image labels: what the image is for and which toolchain it carries."""
    p = target_entry(manifest, target)
    toolkit = manifest["toolkits"][p["vendor"]]
    common = manifest["image_common"]
    return {
        "org.opencontainers.image.base.name": base_ref(manifest),
        "knlp.gpu_target": target,
        "knlp.gpu": p["gpu"],
        "knlp.vendor": p["vendor"],
        "knlp.arch": p["arch"],
        "knlp.toolkit": f"{toolkit['tool']} {toolkit['version']}",
        "knlp.bazel": common["bazel"],
        "knlp.python": common["python"],
        "knlp.debian-snapshot": common["debian_snapshot"],
    }


def containerfile(target_vendor, layer_only, root=HERE):
    return root / ("layer.Containerfile" if layer_only else f"{target_vendor}/Containerfile")


def stage_context(manifest, target, files, dest):
    """Copies `files` (workspace-relative paths) into DEST/knlp with fixed modes."""
    p = target_entry(manifest, target)
    dest = Path(dest)
    knlp = dest / "knlp"
    for rel in sorted(files):
        src = Path(rel)
        if not src.is_file():
            raise ImageError(f"toolchain file {rel} is missing (cwd {Path.cwd()})")
        out = knlp / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
        out.chmod(0o755 if os.access(src, os.X_OK) else 0o644)
    target_json = knlp / "containers" / "target.json"
    target_json.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "target": target,
        **p,
        "toolkit": manifest["toolkits"][p["vendor"]],
        "image_common": manifest["image_common"],
        "base_image": manifest["base_image"],
    }
    target_json.write_text(json.dumps(entry, indent=1, sort_keys=True) + "\n")
    target_json.chmod(0o644)
    for d in [dest, *(q for q in dest.rglob("*") if q.is_dir())]:
        d.chmod(0o755)
    return dest


def buildah_base(storage=None):
    """`buildah` with vfs storage (no kernel overlay needed), optionally private."""
    cmd = [shutil.which("buildah") or "/usr/bin/buildah", "--storage-driver", "vfs"]
    if storage:
        cmd += ["--root", f"{storage}/root", "--runroot", f"{storage}/runroot"]
    return cmd


def bud_command(manifest, target, context, layer_only=False, storage=None, tag=None, policy=None):
    p = target_entry(manifest, target)
    cmd = buildah_base(storage) + ["bud", "--isolation", "chroot", "--timestamp", "0"]
    if policy:
        cmd += ["--signature-policy", str(policy)]
    cmd += ["-f", str(containerfile(p["vendor"], layer_only, Path(context)))]
    if not layer_only:
        for key, value in build_args(manifest, target).items():
            cmd += ["--build-arg", f"{key}={value}"]
    for key, value in labels(manifest, target).items():
        cmd += ["--label", f"{key}={value}"]
    layer = "-layer" if layer_only else ""
    cmd += [
        "--iidfile",
        str(Path(context) / "image.id"),
        "-t",
        tag or f"{p['image']}{layer}:latest",
    ]
    cmd.append(str(context))
    return cmd


def build(manifest, target, files, layer_only=False, storage=None, dry_run=False, out=sys.stdout):
    """Stages a context and runs buildah; returns the image ID (or None on a dry run)."""
    p = target_entry(manifest, target)
    with tempfile.TemporaryDirectory(prefix="knlp-image-") as tmp:
        context = stage_context(manifest, target, files, Path(tmp) / "context")
        for name in ("layer.Containerfile", f"{p['vendor']}/Containerfile"):
            copied = context / name
            copied.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HERE / name, copied)
        policy = Path(tmp) / "policy.json"
        # Only the pinned digest is pulled, so any signature policy would do;
        # this one keeps builds independent of /etc/containers on the host.
        policy.write_text('{"default": [{"type": "insecureAcceptAnything"}]}\n')
        cmd = bud_command(manifest, target, context, layer_only, storage, policy=policy)
        if dry_run:
            print(shlex.join(cmd), file=out)
            return None
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            raise ImageError(f"buildah failed for {target}:\n{proc.stdout[-3000:]}")
        return (context / "image.id").read_text().strip()


def inspect_labels(image_id, storage=None):
    cmd = buildah_base(storage) + ["inspect", "--type", "image", image_id]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImageError(f"buildah inspect {image_id} failed: {proc.stderr}")
    return json.loads(proc.stdout)["OCIv1"]["config"].get("Labels", {})


def platform_digest(index, os_name="linux", arch="amd64"):
    """The digest of the OS/arch image in a registry's manifest list (OCI index)."""
    if "manifests" not in index:
        raise ImageError("the registry returned a single-platform manifest, not a manifest list")
    for m in index["manifests"]:
        plat = m.get("platform", {})
        if (
            plat.get("os") == os_name
            and plat.get("architecture") == arch
            and not plat.get("variant")
        ):
            return m["digest"]
    raise ImageError(f"no {os_name}/{arch} image in the manifest list")


def rewrite_lock(text, base_digest=None, pushed=None):
    """images_lock.bzl with a new base digest and/or pushed image digests."""
    if base_digest is not None:
        if not DIGEST_RE.match(base_digest):
            raise ImageError(f"bad digest {base_digest!r}; expected sha256:<64 hex>")
        text, n = re.subn(
            r'("digest": )"sha256:[0-9a-f]{64}"', rf'\1"{base_digest}"', text, count=1
        )
        if n != 1:
            raise ImageError("images_lock.bzl has no BASE_IMAGE digest to replace")
        text = text.replace('"verified_from_registry": False', '"verified_from_registry": True')
    if pushed is not None:
        for target, digest in pushed.items():
            if not DIGEST_RE.match(digest):
                raise ImageError(f"bad digest {digest!r} for {target}; expected sha256:<64 hex>")
        body = "".join(f'    "{k}": "{v}",\n' for k, v in sorted(pushed.items()))
        block = "PUSHED_IMAGES = {\n" + body + "}" if body else "PUSHED_IMAGES = {}"
        text, n = re.subn(r"PUSHED_IMAGES = \{[^}]*\}", block, text, count=1)
        if n != 1:
            raise ImageError("images_lock.bzl has no PUSHED_IMAGES to replace")
    return text


def workspace_dir():
    ws = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if not ws:
        raise ImageError(
            "lock and push rewrite containers/images_lock.bzl; run them with bazel run"
        )
    return Path(ws)


def cmd_lock(manifest, check):
    base = manifest["base_image"]
    ref = f"docker://{base['repository']}:{base['tag']}"
    skopeo = shutil.which("skopeo")
    if not skopeo:
        raise ImageError("lock needs skopeo (apt-get install skopeo) and access to the registry")
    proc = subprocess.run([skopeo, "inspect", "--raw", ref], capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImageError(f"skopeo inspect {ref} failed: {proc.stderr.strip()}")
    digest = platform_digest(json.loads(proc.stdout), *base["platform"].split("/"))
    if check:
        if digest != base["digest"]:
            raise ImageError(f"{ref} (linux/amd64) is {digest}, the lock says {base['digest']}")
        print(f"{ref}: {digest} matches the lock")
        return
    lock = workspace_dir() / LOCK_FILE
    lock.write_text(rewrite_lock(lock.read_text(), base_digest=digest))
    print(f"{LOCK_FILE}: {ref} -> {digest}")


def cmd_push(manifest, target, registry):
    p = target_entry(manifest, target)
    dest = f"docker://{registry or manifest['registry']}/{p['image']}:latest"
    with tempfile.TemporaryDirectory() as tmp:
        digestfile = Path(tmp) / "digest"
        cmd = buildah_base() + [
            "push",
            "--digestfile",
            str(digestfile),
            f"{p['image']}:latest",
            dest,
        ]
        if subprocess.run(cmd).returncode != 0:
            raise ImageError(f"buildah push to {dest} failed (build it first: build {target})")
        digest = digestfile.read_text().strip()
    lock = workspace_dir() / LOCK_FILE
    pushed = {k: v["pushed"] for k, v in manifest["targets"].items() if v["pushed"]}
    pushed[target] = digest
    lock.write_text(rewrite_lock(lock.read_text(), pushed=pushed))
    print(f"{dest}@{digest} recorded in {LOCK_FILE}")


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--manifest", default="containers/images.json")
    parser.add_argument(
        "--files-from",
        default="containers/toolchain_files.txt",
        help="the list of toolchain files to stage (generated by //containers:toolchain_files)",
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="the targets and their images")
    b = sub.add_parser("build", help="build a target's image with buildah")
    b.add_argument("target")
    b.add_argument("--layer-only", action="store_true", help="the toolchain layer, from scratch")
    b.add_argument("--storage", help="private buildah storage directory")
    b.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("push", help="push a built image and record its digest in the lock")
    p.add_argument("target")
    p.add_argument("--registry")
    lk = sub.add_parser("lock", help="re-resolve the base image digest")
    lk.add_argument("--check", action="store_true", help="compare only; change nothing")
    args = parser.parse_args(argv)
    try:
        manifest = load_manifest(args.manifest)
        if args.cmd == "list":
            for name, p in sorted(manifest["targets"].items()):
                ref = p["exec_properties"]["container-image"]
                print(f"{name:<6} {p['gpu']:<38} {p['vendor']} {p['arch']:<8} {ref}")
        elif args.cmd == "build":
            files = read_file_list(args.files_from)
            image_id = build(
                manifest, args.target, files, args.layer_only, args.storage, args.dry_run
            )
            if image_id:
                print(image_id)
        elif args.cmd == "push":
            cmd_push(manifest, args.target, args.registry)
        else:
            cmd_lock(manifest, args.check)
    except ImageError as e:
        print(f"image.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
