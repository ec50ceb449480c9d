//! Loading ONNX Runtime, once per process.
//!
//! With the default `load-dynamic` feature the shared library is opened at run time
//! from an explicit path or from `ORT_DYLIB_PATH` (the xtask provisions it from the
//! `onnxruntime` wheel on PyPI into `build/onnxruntime/` and sets the variable). ONNX
//! Runtime allows one library and one environment per process, so the first
//! successful initialisation is kept for the life of the process and every
//! [`crate::ModelManager`] shares it.
//!
//! Why the checks before handing the path to `ort`: `ort` panics, rather than
//! returning an error, when its global API is first used without a loaded library,
//! and a few of its loading paths `expect` (a relative path resolved against the
//! executable, a null API base). So this module checks that the file exists, makes
//! the path absolute, probes the version with `ort::util::probe` (which returns
//! `None` instead of failing), and only then initialises; the initialisation itself
//! runs under `catch_unwind`, so whatever `ort` does, the caller gets an
//! [`Error`] value, never a panic. (A crash inside the C++ library itself, such as a
//! corrupt file that loads, cannot be caught; the probe makes it unlikely.)

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::environment::Environment;

use crate::error::{Error, PROVISION_HINT, Result};

/// The ONNX Runtime release the project provisions (from PyPI) and tests against.
pub const ORT_VERSION: &str = "1.31.1";

/// The oldest ONNX Runtime minor version (`1.x`) the library accepts: the API level
/// `ort` is built with.
pub const ORT_MINOR_REQUIRED: u32 = ort::MINOR_VERSION;

/// The process-wide ONNX Runtime: the loaded library and its environment.
pub(crate) struct Runtime {
    pub(crate) env: Environment,
    /// Where the library came from, for `describe` (`None` when linked at build time).
    pub(crate) dylib: Option<PathBuf>,
    /// Minor version of the loaded library, when known.
    pub(crate) minor: Option<u32>,
}

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
/// Serialises initialisation: `ort`'s loader is itself one-shot.
static INIT: Mutex<()> = Mutex::new(());

/// Returns the process's ONNX Runtime, initialising it on first use from `dylib`
/// or, when `None`, from `ORT_DYLIB_PATH`.
pub(crate) fn runtime(dylib: Option<&Path>) -> Result<&'static Runtime> {
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    #[cfg(feature = "load-dynamic")]
    {
        let path = resolve_path(dylib)?;
        let loaded = RUNTIME.get();
        if let Some(rt) = loaded
            && rt.dylib.as_deref().is_none_or(|p| same_file(p, &path))
        {
            return Ok(rt);
        }
        // A wrong file is reported as such even when another library is loaded.
        let minor = probe_version(&path)?;
        if let Some(rt) = loaded {
            return Err(Error::OrtAlreadyLoaded {
                loaded: rt.dylib.clone().unwrap_or_default(),
                requested: path,
            });
        }
        let env = catch(&path, || {
            let builder = ort::init_from(&path).map_err(|e| e.to_string())?;
            builder
                .with_name("we-infer")
                .with_telemetry(false)
                .build()
                .map_err(|e| e.to_string())
        })?;
        Ok(RUNTIME.get_or_init(|| Runtime {
            env,
            dylib: Some(path),
            minor: Some(minor),
        }))
    }
    #[cfg(not(feature = "load-dynamic"))]
    {
        // Linked at build time (`download-binaries`, or a system library through
        // `ORT_LIB_LOCATION`): there is no path to choose.
        let _ = dylib;
        if let Some(rt) = RUNTIME.get() {
            return Ok(rt);
        }
        let linked = PathBuf::from("<linked at build time>");
        let env = catch(&linked, || {
            ort::init()
                .with_name("we-infer")
                .with_telemetry(false)
                .build()
                .map_err(|e| e.to_string())
        })?;
        Ok(RUNTIME.get_or_init(|| Runtime {
            env,
            dylib: None,
            minor: Some(ORT_MINOR_REQUIRED),
        }))
    }
}

/// The explicit path, else `ORT_DYLIB_PATH`; checked to exist and made absolute
/// (`ort` resolves relative paths against the executable and `expect`s on the way).
#[cfg(feature = "load-dynamic")]
fn resolve_path(dylib: Option<&Path>) -> Result<PathBuf> {
    let path = match dylib {
        Some(p) => p.to_path_buf(),
        None => match std::env::var_os("ORT_DYLIB_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                return Err(Error::OrtPathUnset {
                    hint: PROVISION_HINT,
                });
            }
        },
    };
    if !path.is_file() {
        return Err(Error::OrtNotFound {
            path,
            hint: PROVISION_HINT,
        });
    }
    // Canonical, so that `describe` shows a clean path and two spellings of one
    // file compare equal.
    Ok(std::fs::canonicalize(&path)
        .or_else(|_| std::path::absolute(&path))
        .unwrap_or(path))
}

#[cfg(feature = "load-dynamic")]
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Reads the library's version without initialising `ort`'s global state.
#[cfg(feature = "load-dynamic")]
fn probe_version(path: &Path) -> Result<u32> {
    let probed = std::panic::catch_unwind(|| ort::util::probe(path))
        .ok()
        .flatten();
    match probed {
        Some(minor) if minor >= ORT_MINOR_REQUIRED => Ok(minor),
        Some(minor) => Err(Error::OrtVersion {
            path: path.to_path_buf(),
            found: format!("1.{minor}"),
            required_minor: ORT_MINOR_REQUIRED,
            hint: PROVISION_HINT,
        }),
        None => Err(Error::OrtVersion {
            path: path.to_path_buf(),
            found: "unknown (the file does not load as an ONNX Runtime 1.x library)".to_owned(),
            required_minor: ORT_MINOR_REQUIRED,
            hint: PROVISION_HINT,
        }),
    }
}

/// Runs an `ort` initialisation step, turning both its errors and its panics into
/// [`Error::OrtInit`].
fn catch<T>(path: &Path, f: impl FnOnce() -> Result<T, String>) -> Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(reason)) => Err(Error::OrtInit {
            path: path.to_path_buf(),
            reason,
            hint: PROVISION_HINT,
        }),
        Err(panic) => Err(Error::OrtInit {
            path: path.to_path_buf(),
            reason: format!("ort panicked: {}", panic_message(panic.as_ref())),
            hint: PROVISION_HINT,
        }),
    }
}

/// The text of a caught panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-text panic payload)".to_owned()
    }
}

impl Runtime {
    /// `onnxruntime 1.31 (/path/libonnxruntime.so.1.31.1)`.
    pub(crate) fn describe(&self) -> String {
        let version = match self.minor {
            Some(m) => format!("1.{m}"),
            None => "1.?".to_owned(),
        };
        match &self.dylib {
            Some(p) => format!("onnxruntime {version} ({})", p.display()),
            None => format!("onnxruntime {version} (linked at build time)"),
        }
    }
}
