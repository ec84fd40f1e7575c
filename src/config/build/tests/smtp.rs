//! The email target's SMTP block: `ca_file` (read and checked at load), the
//! port range, and the warnings for settings that would be silently unused.

use std::path::Path;

use super::{errors, loaded, with_target};
use crate::config::model::*;

/// An email target whose `smtp` block is `smtp` (line 4 of the document).
fn email_with(smtp: &str) -> String {
    with_target(&format!(
        "{{ kind: email, smtp: {smtp}, from: a@b.c, to: [a@b.c], subject: s, body: b }}"
    ))
}

fn write(dir: &Path, name: &str, contents: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path.display().to_string()
}

fn smtp_of(config: &Config) -> &SmtpConfig {
    match &config.targets[0].kind {
        TargetKind::Email(e) => &e.smtp,
        other => panic!("{other:?}"),
    }
}

#[test]
fn ca_file_certificates_are_read_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let a = rcgen::generate_simple_self_signed(vec!["a.example".into()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["b.example".into()]).unwrap();
    // A key beside the certificates is skipped, not an error.
    let pem = format!(
        "{}{}{}",
        a.cert.pem(),
        a.signing_key.serialize_pem(),
        b.cert.pem()
    );
    let path = write(dir.path(), "ca.pem", &pem);
    let yaml = email_with(&format!("{{ host: m, ca_file: '{path}' }}"));
    let loaded = loaded(&yaml);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let smtp = smtp_of(&loaded.config);
    assert_eq!(smtp.ca_file.as_deref(), Some(Path::new(&path)));
    assert_eq!(
        smtp.ca_certs,
        [a.cert.der().to_vec(), b.cert.der().to_vec()]
    );
}

#[test]
fn without_ca_file_no_extra_roots() {
    let smtp = smtp_of(&loaded(&email_with("{ host: m }")).config).clone();
    assert_eq!(smtp.ca_file, None);
    assert!(smtp.ca_certs.is_empty());
}

#[test]
fn ca_file_problems_are_config_errors_at_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.pem").display().to_string();
    let not_pem = write(dir.path(), "notes.txt", "just some text\n");
    let key_only = write(
        dir.path(),
        "key.pem",
        &rcgen::KeyPair::generate().unwrap().serialize_pem(),
    );
    let garbled = write(
        dir.path(),
        "garbled.pem",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let cases = [
        (
            &missing,
            "cannot read the CA file",
            "give the path of a PEM file",
        ),
        (&not_pem, "holds no PEM certificate", "BEGIN CERTIFICATE"),
        (&key_only, "holds no PEM certificate", "BEGIN CERTIFICATE"),
        (&garbled, "is not a usable CA certificate", "PEM form"),
    ];
    for (path, message, help) in cases {
        let yaml = email_with(&format!("{{ host: m, ca_file: '{path}' }}"));
        let errs = errors(&yaml);
        assert_eq!(errs.len(), 1, "{path}: {errs:?}");
        let e = &errs[0];
        let column = yaml.lines().nth(3).unwrap().find('\'').unwrap() as u64 + 1;
        assert_eq!(
            (e.line, e.column, e.key_path.as_str()),
            (4, column, "targets.t.smtp.ca_file"),
            "{e:?}"
        );
        assert!(e.message.contains(message), "{path}: {e:?}");
        assert!(e.message.contains(path.as_str()), "names the file: {e:?}");
        assert!(
            e.help.as_deref().is_some_and(|h| h.contains(help)),
            "{path}: {e:?}"
        );
    }
}

#[test]
fn ca_file_from_an_unset_variable_is_not_read_under_allow_missing_env() {
    let yaml = email_with("{ host: m, tls: tls, ca_file: '${SMTP_CA_FILE}' }");
    let loaded = super::load_with(&yaml, true, &|_| None).unwrap();
    let smtp = smtp_of(&loaded.config);
    assert_eq!(smtp.ca_file, None);
    assert!(smtp.ca_certs.is_empty());
}

#[test]
fn ports_out_of_range_say_which_ports_are_valid() {
    for (port, shown) in [("0", "port 0"), ("70000", "port 70000"), ("-1", "port -1")] {
        let yaml = email_with(&format!("{{ host: m, port: {port} }}"));
        let errs = errors(&yaml);
        assert_eq!(errs.len(), 1, "{errs:?}");
        let e = &errs[0];
        assert_eq!(e.key_path, "targets.t.smtp.port");
        assert_eq!(e.line, 4);
        assert!(
            e.message.contains(&format!("{shown} is out of range")),
            "{e:?}"
        );
        assert!(
            e.help.as_deref().is_some_and(|h| h.contains("1 to 65535")),
            "{e:?}"
        );
    }
    let smtp = smtp_of(&loaded(&email_with("{ host: m, port: 65535 }")).config).clone();
    assert_eq!(smtp.port, 65535);
}

#[test]
fn unused_settings_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["m".into()]).unwrap();
    let path = write(dir.path(), "ca.pem", &ca.cert.pem());
    let yaml = with_target(&format!(
        "{{ kind: email, timeout: 5s, smtp: {{ host: m, tls: none, ca_file: '{path}', username: u, password: p }}, from: a@b.c, to: [a@b.c], subject: s, body: b }}"
    ));
    let loaded = loaded(&yaml);
    let mut got: Vec<(&str, &str)> = loaded
        .warnings
        .iter()
        .map(|w| (w.key_path.as_str(), w.message.as_str()))
        .collect();
    got.sort();
    assert_eq!(got.len(), 3, "{:?}", loaded.warnings);
    assert_eq!(got[0].0, "targets.t.smtp.ca_file");
    assert!(got[0].1.contains("is not used: `tls` is `none`"), "{got:?}");
    assert_eq!(got[1].0, "targets.t.smtp.password");
    assert!(got[1].1.contains("in clear text"), "{got:?}");
    assert_eq!(got[2].0, "targets.t.timeout");
    assert!(
        got[2].1.contains("does not apply to email targets"),
        "{got:?}"
    );
    for w in &loaded.warnings {
        assert!(!w.message.contains("=p") && w.help.is_some(), "{w:?}");
    }
}
