//! Provisioning of ONNX Runtime: the shared library that `we-infer` loads at run
//! time (`ort` with `load-dynamic`), taken from the `onnxruntime` wheel on PyPI.
//!
//! The wheel is fetched with `python3 -m pip download` (pip is the one network
//! client the project relies on, and PyPI the one index it needs), and the library
//! is pulled out of it with Python's `zipfile`, so no `unzip` tool is needed on any
//! platform. The result lives in `<root>/build/onnxruntime/` with a `VERSION` stamp;
//! a second call finds it there and does nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The ONNX Runtime release `we-infer` is built for (`ort` API level 31).
pub const ORT_VERSION: &str = "1.31.1";

/// File name of the library inside the wheel's `onnxruntime/capi/` folder.
fn library_name() -> String {
    if cfg!(target_os = "windows") {
        "onnxruntime.dll".to_owned()
    } else if cfg!(target_os = "macos") {
        format!("libonnxruntime.{ORT_VERSION}.dylib")
    } else {
        format!("libonnxruntime.so.{ORT_VERSION}")
    }
}

/// Makes sure `<root>/build/onnxruntime/` holds ONNX Runtime [`ORT_VERSION`] and
/// returns the library's path, for `ORT_DYLIB_PATH`. Does nothing when the library
/// and its version stamp are already there.
pub fn ensure_onnxruntime(root: &Path) -> Result<PathBuf> {
    let dir = root.join("build").join("onnxruntime");
    let lib = dir.join(library_name());
    let stamp = dir.join("VERSION");
    let stamped = std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == ORT_VERSION);
    if stamped && lib.is_file() {
        return Ok(lib);
    }

    let wheel_dir = root.join("build").join("ort-wheel");
    std::fs::create_dir_all(&wheel_dir)
        .with_context(|| format!("creating {}", wheel_dir.display()))?;
    let wheel = match find_wheel(&wheel_dir)? {
        Some(w) => w,
        None => {
            download_wheel(&wheel_dir)?;
            find_wheel(&wheel_dir)?.with_context(|| {
                format!(
                    "pip reported success but no onnxruntime-{ORT_VERSION} wheel is in {}",
                    wheel_dir.display()
                )
            })?
        }
    };

    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    extract(&wheel, &dir)?;
    if !lib.is_file() {
        bail!(
            "{} holds no onnxruntime/capi/{} (is it a wheel for this platform?)",
            wheel.display(),
            library_name()
        );
    }
    std::fs::write(&stamp, format!("{ORT_VERSION}\n"))
        .with_context(|| format!("writing {}", stamp.display()))?;
    Ok(lib)
}

/// The `onnxruntime-<version>-*.whl` in `dir`, if pip already put one there.
fn find_wheel(dir: &Path) -> Result<Option<PathBuf>> {
    let prefix = format!("onnxruntime-{ORT_VERSION}-");
    let mut wheels: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".whl"))
        })
        .collect();
    wheels.sort();
    Ok(wheels.pop())
}

/// A Python interpreter: `python3`, else `python` (Windows).
fn python() -> Result<&'static str> {
    for candidate in ["python3", "python"] {
        let ok = Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(candidate);
        }
    }
    bail!(
        "no Python found (tried python3, python); it is needed to fetch ONNX Runtime {ORT_VERSION} \
         from PyPI. Install Python 3 with pip, or download the onnxruntime=={ORT_VERSION} wheel \
         yourself and set ORT_DYLIB_PATH to onnxruntime/capi/{} inside it",
        library_name()
    )
}

fn download_wheel(wheel_dir: &Path) -> Result<()> {
    let python = python()?;
    let status = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
        ])
        .arg(format!("onnxruntime=={ORT_VERSION}"))
        .arg("-d")
        .arg(wheel_dir)
        .status()
        .with_context(|| format!("running {python} -m pip download"))?;
    if !status.success() {
        bail!(
            "`{python} -m pip download onnxruntime=={ORT_VERSION} --no-deps --only-binary=:all:` \
             failed ({status}); check that PyPI is reachable, or set ORT_DYLIB_PATH to an ONNX \
             Runtime {ORT_VERSION} library"
        );
    }
    Ok(())
}

/// Copies the `onnxruntime/capi/*onnxruntime*` shared libraries out of the wheel
/// into `dir` (the main library and the providers-shared helper that GPU
/// providers load next to it). Each file is written under a temporary name and
/// renamed, so an interrupted run never leaves a truncated library behind.
fn extract(wheel: &Path, dir: &Path) -> Result<()> {
    const SCRIPT: &str = r#"
import os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = name.rsplit("/", 1)[-1]
        if not name.startswith("onnxruntime/capi/") or "onnxruntime" not in base:
            continue
        if not (".so" in base or base.endswith(".dylib") or base.endswith(".dll")):
            continue
        if "pybind" in base:
            continue
        tmp = os.path.join(out, base + ".part")
        with z.open(name) as src, open(tmp, "wb") as dst:
            dst.write(src.read())
        os.chmod(tmp, 0o755)
        os.replace(tmp, os.path.join(out, base))
        print(base)
"#;
    let python = python()?;
    let output = Command::new(python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(wheel)
        .arg(dir)
        .output()
        .with_context(|| format!("running {python} to unpack {}", wheel.display()))?;
    if !output.status.success() {
        bail!(
            "unpacking {} failed: {}",
            wheel.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
