//! Malformed scenario files: each is refused with `Error::Scenario` (or
//! `Error::ScenarioIo` for a file that cannot be read) naming the file and the
//! field or line at fault, and saying what is wrong. Nothing panics.
//!
//! Line numbers are those of the offending key or value, 1-based: a key at
//! the start of line `n` is reported as `line n`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use we_runtime::{Error, Scenario};

const FILE: &str = "scenarios/bad.toml";

/// A valid scenario to start from.
const GOOD: &str =
    "seed = 1\nticks = 10\n[[agents]]\nname = \"ring\"\nmodule = \"ring.wasm\"\ncount = 4\n";

fn parse(bytes: &[u8]) -> we_runtime::Result<Scenario> {
    Scenario::parse(FILE, bytes, PathBuf::from("scenarios"))
}

/// Checks that `text` is refused naming the file, `field` and `problem`.
#[track_caller]
fn check(text: &str, field: &str, problem: &str) {
    check_bytes(text.as_bytes(), field, problem);
}

#[track_caller]
fn check_bytes(bytes: &[u8], field: &str, problem: &str) {
    match parse(bytes) {
        Err(e @ Error::Scenario { .. }) => {
            let Error::Scenario {
                file,
                field: f,
                problem: p,
            } = &e
            else {
                unreachable!()
            };
            assert_eq!(file, FILE, "{e}");
            assert_eq!(f, field, "{e}");
            assert!(p.contains(problem), "problem `{p}` lacks `{problem}`");
            let shown = e.to_string();
            assert!(
                shown.contains(FILE) && shown.contains(field),
                "message `{shown}` does not name the file and field"
            );
        }
        other => panic!("expected a scenario error about `{field}`, got {other:?}"),
    }
}

#[test]
fn the_good_scenario_parses() {
    let s = parse(GOOD.as_bytes()).unwrap();
    assert_eq!(s.agent_count(), 4);
}

#[test]
fn not_utf8() {
    check_bytes(b"seed = 1\nticks = \xff\xfe\n", "(file)", "not UTF-8");
    check_bytes(&[0xc3], "(file)", "not UTF-8");
    // UTF-16 with a byte order mark, as some editors save.
    let utf16: Vec<u8> = GOOD.encode_utf16().flat_map(|u| u.to_le_bytes()).collect();
    check_bytes(&[&[0xff, 0xfe][..], &utf16].concat(), "(file)", "not UTF-8");
}

#[test]
fn bad_toml_names_the_line() {
    check("seed = 1\nticks = 10\n[[agents]\n", "line 3", "");
    check("seed = 1\nticks = = 10\n", "line 2", "");
    check("seed = 1\nseed = 2\nticks = 1\n", "line 2", "duplicate");
    check("seed = \"unterminated\nticks = 1\n", "line 1", "");
    check("\0\0\0", "line 1", "");
}

#[test]
fn wrong_types_name_the_line() {
    check(&GOOD.replace("seed = 1", "seed = \"one\""), "line 1", "");
    check(&GOOD.replace("ticks = 10", "ticks = -5"), "line 2", "");
    check(&GOOD.replace("count = 4", "count = 4.5"), "line 6", "");
    check(
        &GOOD.replace("count = 4", "count = 4294967296"),
        "line 6",
        "",
    );
    check(&GOOD.replace("name = \"ring\"", "name = 3"), "line 4", "");
    check(
        &format!("{GOOD}[scheduler]\npolicy = \"random\"\n"),
        "line 8",
        "random",
    );
    check(
        &format!("{GOOD}[limits]\nmemory_pages = true\n"),
        "line 8",
        "",
    );
    check("seed = 1\nticks = 1\nagents = 3\n", "line 3", "");
}

#[test]
fn unknown_fields_are_named() {
    check(&format!("bogus = 3\n{GOOD}"), "line 1", "bogus");
    check(&format!("{GOOD}colour = \"red\"\n"), "line 7", "colour");
    check(&format!("{GOOD}[limits]\nfuel = 5\n"), "line 8", "fuel");
    check(
        &format!("{GOOD}[network]\nallow = true\n"),
        "line 7",
        "network",
    );
}

#[test]
fn missing_required_fields() {
    // toml reports a missing top-level key with the whole document's span.
    check(
        "ticks = 10\n[[agents]]\nname='a'\nmodule='a'\ncount=1\n",
        "line 1",
        "missing field `seed`",
    );
    check(
        "seed = 1\n[[agents]]\nname='a'\nmodule='a'\ncount=1\n",
        "line 1",
        "missing field `ticks`",
    );
    check("seed = 1\nticks = 1\n", "line 1", "missing field `agents`");
    check("", "line 1", "missing field `seed`");
    // A key missing from a table: the table's line.
    check(
        &GOOD.replace("module = \"ring.wasm\"\n", ""),
        "line 3",
        "missing field `module`",
    );
}

#[test]
fn no_agents_and_zero_counts() {
    check(
        "seed = 1\nticks = 1\nagents = []\n",
        "agents",
        "at least one",
    );
    check(
        &GOOD.replace("count = 4", "count = 0"),
        "agents[0].count",
        "at least 1",
    );
    let two = format!("{GOOD}[[agents]]\nname = \"b\"\nmodule = \"b.wasm\"\ncount = 0\n");
    check(&two, "agents[1].count", "at least 1");
    check(&format!("workers = 0\n{GOOD}"), "workers", "at least 1");
    check(
        &format!("{GOOD}[limits]\nfuel_per_call = 0\n"),
        "limits.fuel_per_call",
        "at least 1",
    );
    check(
        &format!("{GOOD}[limits]\nmemory_pages = 0\n"),
        "limits.memory_pages",
        "1..=65536",
    );
    check(
        &format!("{GOOD}[limits]\nmemory_pages = 65537\n"),
        "limits.memory_pages",
        "1..=65536",
    );
    check(
        &format!("{GOOD}[limits]\nmailbox_capacity = 0\n"),
        "limits.mailbox_capacity",
        "at least 1",
    );
}

#[test]
fn too_many_agents() {
    let text = format!(
        "seed = 1\nticks = 1\n{}",
        "[[agents]]\nname = \"a\"\nmodule = \"a.wasm\"\ncount = 4294967295\n".repeat(2)
    );
    check(&text, "agents", "exceed the maximum");
}

#[test]
fn bad_hex_config() {
    check(
        &format!("{GOOD}config_hex = \"0g\"\n"),
        "agents[0].config_hex",
        "`0g` is not a hex byte",
    );
    check(
        &format!("{GOOD}config_hex = \"abc\"\n"),
        "agents[0].config_hex",
        "odd number",
    );
    check(
        &format!("{GOOD}config_hex = \"é1\"\n"),
        "agents[0].config_hex",
        "`é` is not a hex digit",
    );
    check(
        &format!("{GOOD}config = \"x\"\nconfig_hex = \"00\"\n"),
        "agents[0]",
        "not both",
    );
    // Whitespace between hex digits is allowed.
    let s = parse(format!("{GOOD}config_hex = \"01 ff\"\n").as_bytes()).unwrap();
    assert_eq!(s.config_bytes(0), [0x01, 0xff]);
}

#[test]
fn an_unreadable_file_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    match Scenario::load(&missing) {
        Err(e @ Error::ScenarioIo { .. }) => {
            assert!(e.to_string().contains("missing.toml"), "{e}");
        }
        other => panic!("expected ScenarioIo, got {other:?}"),
    }
    // A directory is not a scenario file.
    match Scenario::load(dir.path()) {
        Err(e @ Error::ScenarioIo { .. }) => {
            assert!(
                e.to_string().contains(&dir.path().display().to_string()),
                "{e}"
            );
        }
        other => panic!("expected ScenarioIo, got {other:?}"),
    }
    // A file on disk: errors name its path.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "seed = 1\n").unwrap();
    let e = Scenario::load(&bad).unwrap_err().to_string();
    assert!(
        e.contains(&bad.display().to_string()) && e.contains("ticks"),
        "{e}"
    );
}

#[test]
fn deeply_nested_and_huge_inputs_do_not_panic() {
    // Deep nesting: toml has a recursion limit; either way an error, no
    // stack overflow.
    let deep = format!("seed = {}1{}\n", "[".repeat(10_000), "]".repeat(10_000));
    assert!(parse(deep.as_bytes()).is_err());
    let inline = format!("seed = {}\n", "{a = ".repeat(5_000) + &"}".repeat(5_000));
    assert!(parse(inline.as_bytes()).is_err());
    // A long file of comments and one error at the end names the right line.
    let long = format!("{}{GOOD}bogus = 1\n", "# comment\n".repeat(100_000));
    check(&long, "line 100007", "bogus");
}
