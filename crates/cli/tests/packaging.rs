//! The files the Debian package ships that `aps` writes itself: `aps generate man DIR`
//! (the commands' pages and `aps.toml.5`) and `aps generate completions DIR`.

use std::process::Command;

const APS: &str = env!("CARGO_BIN_EXE_aps");

fn generate(what: &str, dir: &std::path::Path) -> Vec<String> {
    let out = Command::new(APS)
        .args(["generate", what])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aps generate {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    // It prints what it wrote, one path a line.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        names.len()
    );
    names
}

#[test]
fn man_pages_one_per_visible_command_without_help_or_hidden_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pages = generate("man", &dir.path().join("man"));
    for page in [
        "aps.1",
        "aps-run.1",
        "aps-jobs.1",
        "aps-jobs-list.1",
        "aps-history.1",
        "aps-config-check.1",
        "aps-import-crontab.1",
    ] {
        assert!(pages.iter().any(|p| p == page), "{page} missing: {pages:?}");
    }
    assert!(
        !pages
            .iter()
            .any(|p| p.contains("help") || p.contains("generate")),
        "{pages:?}"
    );
    let run = std::fs::read_to_string(dir.path().join("man/aps-run.1")).unwrap();
    assert!(run.starts_with(".ie"), "not roff: {run:.80}");
    assert!(run.contains("aps\\-run"), "{run}");
    let version = format!("\"aps {}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        run.lines()
            .any(|l| l.starts_with(".TH aps-run 1") && l.contains(&version)),
        "{run}"
    );
    assert!(
        run.contains("APS_CONFIG"),
        "the --config default is missing: {run}"
    );
    // The top page lists the commands by their pages' names.
    let top = std::fs::read_to_string(dir.path().join("man/aps.1")).unwrap();
    assert!(top.contains("aps\\-jobs(1)"), "{top}");
    assert!(!top.contains("generate"), "{top}");
}

/// `aps.toml(5)`, made from the config reference: rendered by groff with every warning
/// on but `break` (a long URL that a line cannot adjust around), and read as `man`
/// shows it.
#[test]
fn the_config_file_page_renders_without_warnings_and_holds_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let pages = generate("man", &dir.path().join("man"));
    assert!(pages.iter().any(|p| p == "aps.toml.5"), "{pages:?}");
    let page = dir.path().join("man/aps.toml.5");
    let groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-Wbreak", "-z"])
        .arg(&page)
        .output()
        .expect("groff (Debian: groff-base) runs");
    assert!(
        groff.status.success() && groff.stderr.is_empty(),
        "groff: {}",
        String::from_utf8_lossy(&groff.stderr)
    );
    let man = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "100")
        .env_remove("MAN_KEEP_FORMATTING")
        .output()
        .expect("man (Debian: man-db) runs");
    let text = String::from_utf8_lossy(&man.stdout);
    assert!(
        man.status.success(),
        "{}",
        String::from_utf8_lossy(&man.stderr)
    );
    // What a reader looks for: the sections, a key with its default and meaning, a
    // code example, a character beyond ASCII.
    for wanted in [
        "APS.TOML(5)",
        "THE CONFIG FILE",
        "[scheduler]",
        "leased_runs",
        "default: 30 s",
        "meaning: On SIGINT/SIGTERM, how long running jobs get to finish.",
        "[[jobs]]",
        "run … at",
        "SEE ALSO",
    ] {
        assert!(text.contains(wanted), "{wanted:?} not in:\n{text}");
    }
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate("completions", dir.path());
    assert_eq!(files, ["_aps", "aps.bash", "aps.fish"]);
    let bash = std::fs::read_to_string(dir.path().join("aps.bash")).unwrap();
    assert!(bash.contains("complete -F _aps"), "{bash:.200}");
    let zsh = std::fs::read_to_string(dir.path().join("_aps")).unwrap();
    assert!(zsh.starts_with("#compdef aps"), "{zsh:.200}");
    let fish = std::fs::read_to_string(dir.path().join("aps.fish")).unwrap();
    assert!(fish.contains("complete -c aps"), "{fish:.200}");
}

#[test]
fn an_unwritable_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let out = Command::new(APS)
        .args(["generate", "man"])
        .arg(file.join("man"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&file.join("man").display().to_string()) && err.contains("cannot create"),
        "{err}"
    );
}
