//! What the CLI says about itself, from the same clap definition as the
//! parser: `hookgate completions SHELL` (every shell's script names every
//! command; bash's really completes), `hookgate man` (hookgate(1), a page per
//! command, roff that groff reads without a warning), and the README's
//! command table listing every command.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{binary, tool_available};

fn run(args: &[&str]) -> Output {
    Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout_of(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "hookgate {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The commands `hookgate --help` lists (without clap's `help`).
fn commands() -> Vec<String> {
    let help = stdout_of(&["--help"]);
    let names: Vec<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_owned)
        .collect();
    for expected in ["serve", "check", "completions", "man"] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    names
}

#[test]
fn completions_for_every_shell_name_every_command() {
    let commands = commands();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(&["completions", shell]);
        for command in &commands {
            assert!(script.contains(command.as_str()), "{shell}: {command}");
        }
    }
    // An unknown shell is a usage error that lists the known ones.
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bash"));

    if tool_available("bash", &["--version"], "sourcing the bash completion") {
        let script = stdout_of(&["completions", "bash"]);
        // Source it and complete `hookgate se` and `hookgate completions `.
        let probe = format!(
            "{script}\n\
             COMP_WORDS=(hookgate se); COMP_CWORD=1; _hookgate hookgate se hookgate\n\
             echo \"${{COMPREPLY[*]}}\"\n\
             COMP_WORDS=(hookgate completions ''); COMP_CWORD=2; _hookgate hookgate '' completions\n\
             echo \"${{COMPREPLY[*]}}\""
        );
        let out = Command::new("bash")
            .args(["--norc", "-c", &probe])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.first(), Some(&"serve send"), "{text}");
        assert!(
            lines.get(1).is_some_and(|l| l.contains("bash elvish fish")),
            "{text}"
        );
    }
}

/// groff's warnings about a page (`-ww`: every warning), when groff is here.
fn groff_warnings(page: &Path) -> Option<String> {
    if !tool_available("groff", &["--version"], "rendering the manual pages") {
        return None;
    }
    let out = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .output()
        .unwrap();
    Some(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn man_prints_hookgate_1_and_writes_a_page_per_command() {
    let commands = commands();
    let page = stdout_of(&["man"]);
    assert!(page.contains(".TH hookgate 1"), "{page}");
    for command in &commands {
        assert!(
            page.contains(&format!("hookgate\\-{command}(1)")),
            "{command}"
        );
    }
    for section in ["ENVIRONMENT", "SIGNALS", "EXIT STATUS", "SEE ALSO"] {
        assert!(page.contains(&format!(".SH {section}")), "{section}");
    }
    for var in ["HOOKGATE_CONFIG", "HOOKGATE_LOG"] {
        assert!(page.contains(var), "{var}");
    }
    let serve = stdout_of(&["man", "serve"]);
    assert!(serve.contains(".TH hookgate-serve 1"), "{serve}");
    assert!(serve.contains("\\-\\-config"), "{serve}");
    let out = run(&["man", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("serve"));

    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    stdout_of(&["man", "--out-dir", out_dir]);
    let mut written: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let mut expected: Vec<String> = commands
        .iter()
        .map(|c| format!("hookgate-{c}.1"))
        .chain(["hookgate.1".to_owned()])
        .collect();
    expected.sort();
    assert_eq!(written, expected);
    // The page written is the page printed.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("hookgate.1")).unwrap(),
        page
    );
    for name in &written {
        if let Some(warnings) = groff_warnings(&dir.path().join(name)) {
            assert_eq!(warnings, "", "{name}");
        }
    }
}

#[test]
fn the_readme_lists_every_command() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for command in commands() {
        assert!(
            readme
                .lines()
                .any(|l| l.starts_with(&format!("| `hookgate {command}"))),
            "README.md's command table lacks `hookgate {command}`"
        );
    }
}
