//! Key files: generation, round trips, and every malformed case refused with
//! an error naming the file and the problem.

use crate::key;
use std::path::Path;
use we_sign::{Error, PublicKey, SecretKey, generate_keypair, load_trusted_keys};

/// Asserts a `KeyFile` error for `path` whose problem contains `needle`.
fn key_file_error(result: Result<impl std::fmt::Debug, Error>, path: &str, needle: &str) {
    match result {
        Err(Error::KeyFile { path: p, problem }) => {
            assert_eq!(p, path);
            assert!(
                problem.contains(needle),
                "problem `{problem}` lacks `{needle}`"
            );
        }
        other => panic!("expected a key file error about {path}: {other:?}"),
    }
}

#[test]
fn generated_keys_round_trip_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = generate_keypair().unwrap();
    let (secret2, public2) = generate_keypair().unwrap();
    assert_ne!(public, public2, "two generated keys are different");
    let sk = dir.path().join("dev.key");
    let pk = dir.path().join("dev.pub");
    secret.save(&sk).unwrap();
    public.save(&pk).unwrap();
    let loaded = SecretKey::load(&sk).unwrap();
    assert_eq!(loaded.public_key(), public);
    assert_eq!(PublicKey::load(&pk).unwrap(), public);
    // Ids: 16 hex digits, named in the comment line of both files.
    let id = public.key_id().to_string();
    assert_eq!(id.len(), 16);
    assert!(std::fs::read_to_string(&pk).unwrap().contains(&id));
    assert!(std::fs::read_to_string(&sk).unwrap().contains(&id));
    // The secret never shows in Debug.
    let shown = format!("{secret:?}");
    assert!(shown.contains(&id) && !shown.contains(&secret.to_text()[60..80]));
    // No overwriting.
    key_file_error(
        secret2.save(&sk),
        &sk.display().to_string(),
        "already exists",
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&sk).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "secret key file is private: {mode:o}");
    }
    // Trusted key lists dedupe.
    let keys = load_trusted_keys(&[&pk, &pk]).unwrap();
    assert_eq!(keys, vec![public]);
}

#[test]
fn key_text_is_stable() {
    let (secret, public) = key(7);
    let text = public.to_text();
    assert!(text.contains("we-ed25519-public:"), "{text}");
    assert_eq!(PublicKey::from_text("k", &text).unwrap(), public);
    assert_eq!(
        SecretKey::from_text("k", &secret.to_text())
            .unwrap()
            .public_key(),
        public
    );
    // Surrounding whitespace, CRLF and comments are fine.
    let line = text.lines().find(|l| !l.starts_with('#')).unwrap();
    let messy = format!("\r\n# a comment\r\n   {line}   \r\n\r\n");
    assert_eq!(PublicKey::from_text("k", &messy).unwrap(), public);
}

#[test]
fn malformed_public_key_texts_are_refused_precisely() {
    let (secret, public) = key(7);
    let hex = public.to_text().lines().nth(1).unwrap()["we-ed25519-public:".len()..].to_string();
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "no key line"),
        ("# only a comment\n\n".into(), "no key line"),
        (
            secret.to_text(),
            "this is a secret key, but a public key is expected",
        ),
        (
            format!("ssh-ed25519 {hex}"),
            "expected `we-ed25519-public:<64 hex digits>`",
        ),
        (
            format!("we-ed25519-public:{}", &hex[..63]),
            "expected 64 hex digits",
        ),
        (format!("we-ed25519-public:{hex}00"), "found 66"),
        (
            format!("we-ed25519-public:{}g", &hex[..63]),
            "`g` at column 82",
        ),
        (
            format!("we-ed25519-public:{}é", &hex[..63]),
            "`é` at column 82",
        ),
        (format!("we-ed25519-public: {hex}"), "` ` at column 19"),
        (
            format!("we-ed25519-public:{hex}\nwe-ed25519-public:{hex}\n"),
            "more than one key line (lines 1 and 2)",
        ),
        // Not a curve point (y = 2 has no x on edwards25519).
        (
            format!("we-ed25519-public:02{}", "0".repeat(62)),
            "not a valid ed25519 public key",
        ),
        // The identity point: small order, forgeable.
        (
            format!("we-ed25519-public:01{}", "0".repeat(62)),
            "weak (small-order)",
        ),
    ];
    for (text, needle) in cases {
        key_file_error(
            PublicKey::from_text("keys/x.pub", &text),
            "keys/x.pub",
            needle,
        );
    }
}

#[test]
fn malformed_secret_key_texts_are_refused_precisely() {
    let (_, public) = key(7);
    key_file_error(
        SecretKey::from_text("x.key", &public.to_text()),
        "x.key",
        "this is a public key, but a secret key is expected",
    );
    key_file_error(
        SecretKey::from_text("x.key", "we-ed25519-secret:abcd"),
        "x.key",
        "found 4",
    );
}

#[test]
fn malformed_key_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let shown = |p: &Path| p.display().to_string();
    let missing = dir.path().join("missing.pub");
    key_file_error(PublicKey::load(&missing), &shown(&missing), "cannot read");
    let binary = write("binary.pub", &[0xff, 0xfe, 0x00, 0x41]);
    key_file_error(
        PublicKey::load(&binary),
        &shown(&binary),
        "not UTF-8 text (invalid byte at offset 0)",
    );
    let huge = write("huge.pub", &vec![b'#'; 5000]);
    key_file_error(
        PublicKey::load(&huge),
        &shown(&huge),
        "larger than 4096 bytes",
    );
    let empty = write("empty.key", b"");
    key_file_error(SecretKey::load(&empty), &shown(&empty), "no key line");
    // A directory is not a key file.
    key_file_error(
        PublicKey::load(dir.path()),
        &shown(dir.path()),
        "cannot read",
    );
    // One bad file among trusted keys fails the whole list, naming that file.
    let (_, public) = key(1);
    let good = dir.path().join("good.pub");
    public.save(&good).unwrap();
    key_file_error(
        load_trusted_keys(&[&good, &binary]),
        &shown(&binary),
        "UTF-8",
    );
}
