//! `cargo xtask new-agent <name> [--agents-dir DIR]`: scaffolds an agent crate
//! from `xtask/templates/agent/` into `agents/<name>/` (or `DIR/<name>/`) and
//! adds it to the agents workspace's `members`, so `cargo xtask build-agents`
//! builds it.
//!
//! The crate gets a working agent, native tests with we-testkit that pass, and
//! a scenario running 100 of it (`agents/<name>/scenario.toml`).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The template files: (path in the new crate, text).
const TEMPLATES: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../templates/agent/Cargo.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/agent/src/lib.rs.tmpl"),
    ),
    (
        "scenario.toml",
        include_str!("../templates/agent/scenario.toml.tmpl"),
    ),
];

/// Runs the subcommand.
pub(crate) fn cli(root: &Path, args: &[String]) -> Result<()> {
    let usage = "usage: cargo xtask new-agent <name> [--agents-dir DIR]";
    let mut name = None;
    let mut agents_dir = root.join("agents");
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--agents-dir" => agents_dir = PathBuf::from(rest.next().context(usage)?),
            other if other.starts_with('-') => bail!("unknown option `{other}`; {usage}"),
            other if name.is_none() => name = Some(other.to_string()),
            other => bail!("unexpected argument `{other}`; {usage}"),
        }
    }
    let name = name.context(usage)?;
    let dir = scaffold(&agents_dir, &name)?;
    let shown = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
    println!("created {shown} (a member of the agents workspace)");
    println!("next:");
    println!("  (cd agents && cargo test -p {name})   # its native tests");
    println!("  cargo xtask build-agents              # build/agents/{name}.wasm");
    println!("  cargo xtask we run {shown}/scenario.toml --trace /tmp/{name}.trace");
    Ok(())
}

/// Why `name` cannot name an agent crate, if it cannot.
fn check_name(name: &str) -> Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        bail!(
            "`{name}` is not a valid agent name: use lower-case letters, digits and single hyphens, starting with a letter (e.g. `my-agent`)"
        );
    }
    if matches!(name, "target" | "src" | "build" | "test" | "core" | "std") {
        bail!("`{name}` is reserved; pick another name");
    }
    Ok(())
}

/// `my-agent` as a type name: `MyAgent`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Writes the crate into `agents_dir/name` and adds it to the workspace's
/// members; returns the crate's directory.
pub(crate) fn scaffold(agents_dir: &Path, name: &str) -> Result<PathBuf> {
    check_name(name)?;
    let manifest = agents_dir.join("Cargo.toml");
    let workspace = std::fs::read_to_string(&manifest)
        .with_context(|| format!("reading the agents workspace {}", manifest.display()))?;
    let dir = agents_dir.join(name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let updated = add_member(&workspace, name)
        .with_context(|| format!("adding `{name}` to members in {}", manifest.display()))?;
    let lib = name.replace('-', "_");
    let ty = type_name(name);
    for (path, text) in TEMPLATES {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let text = text
            .replace("{{name}}", name)
            .replace("{{lib}}", &lib)
            .replace("{{Type}}", &ty);
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
    }
    std::fs::write(&manifest, updated)
        .with_context(|| format!("writing {}", manifest.display()))?;
    Ok(dir)
}

/// `workspace` (the agents' Cargo.toml) with `name` appended to `members`.
fn add_member(workspace: &str, name: &str) -> Result<String> {
    let start = workspace
        .find("members = [")
        .context("no `members = [` in the workspace manifest")?;
    let open = start + "members = [".len();
    let close = open
        + workspace[open..]
            .find(']')
            .context("`members` is not closed")?;
    let list = &workspace[open..close];
    let quoted = format!("\"{name}\"");
    if list.contains(&quoted) {
        bail!("`{name}` is already a member");
    }
    let body = list.trim_end();
    let mut out = String::with_capacity(workspace.len() + name.len() + 8);
    out.push_str(&workspace[..open]);
    if body.trim().is_empty() {
        out.push('\n');
    } else {
        out.push_str(body);
        if !body.ends_with(',') {
            out.push(',');
        }
        out.push('\n');
    }
    out.push_str(&format!("    {quoted},\n"));
    out.push_str(&workspace[close..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_types() {
        assert_eq!(type_name("my-agent"), "MyAgent");
        assert_eq!(type_name("x2"), "X2");
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", "My", "1a", "a_b", "a--b", "a-", "target"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("my-agent-2").unwrap();
    }

    #[test]
    fn members_get_the_new_crate() {
        let text = "[workspace]\nmembers = [\n    \"ring\",\n    \"infer\",\n]\n\n[x]\ny = [1]\n";
        let out = add_member(text, "my-agent").unwrap();
        assert_eq!(
            out,
            "[workspace]\nmembers = [\n    \"ring\",\n    \"infer\",\n    \"my-agent\",\n]\n\n[x]\ny = [1]\n"
        );
        assert!(add_member(&out, "my-agent").is_err());
        assert_eq!(
            add_member("members = []\n", "a").unwrap(),
            "members = [\n    \"a\",\n]\n"
        );
        assert_eq!(
            add_member("members = [\"a\"]\n", "b").unwrap(),
            "members = [\"a\",\n    \"b\",\n]\n"
        );
    }

    #[test]
    fn scaffolds_into_a_copy_of_the_workspace_manifest() {
        let dir = std::env::temp_dir().join(format!("xtask-new-agent-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            "[workspace]\nmembers = [\n    \"ring\",\n]\n",
        )
        .unwrap();
        let made = scaffold(&dir, "my-agent").unwrap();
        let lib = std::fs::read_to_string(made.join("src/lib.rs")).unwrap();
        assert!(lib.starts_with("//!"));
        assert!(lib.contains("pub struct MyAgent"));
        assert!(!lib.contains("{{"));
        let cargo = std::fs::read_to_string(made.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"my_agent\""));
        let ws = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(ws.contains("\"my-agent\","));
        assert!(scaffold(&dir, "my-agent").is_err(), "exists already");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
