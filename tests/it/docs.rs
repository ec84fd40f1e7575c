//! The docs as a newcomer follows them: the README links every document in
//! docs/ and every deployment under deploy/, and every relative link in the
//! README, docs/ and the deploy READMEs names a file that exists (with its
//! `#anchor`, when it has one, among the target's headings).

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The targets of the Markdown links `[text](target)` in `text`, outside
/// fenced code blocks.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_owned());
            }
        }
    }
    out
}

/// GitHub's anchor of a heading: lowercase, spaces to `-`, punctuation
/// other than `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(markdown: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    for dir in [
        "docs",
        "deploy/kubernetes/sidecar",
        "deploy/kubernetes/scale-out",
    ] {
        for entry in std::fs::read_dir(root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension() == Some("md".as_ref()) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_relative_link_names_a_file_that_exists() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let dir = file.parent().unwrap();
        for link in links(&read(&file)) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = match link.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (link.as_str(), None),
            };
            let target = if path.is_empty() {
                file.clone()
            } else {
                dir.join(path)
            };
            if !target.exists() {
                broken.push(format!("{}: {link}", file.display()));
            } else if let Some(fragment) = fragment
                && target.extension() == Some("md".as_ref())
                && !anchors(&read(&target)).iter().any(|a| a == fragment)
            {
                broken.push(format!("{}: {link} (no such heading)", file.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken links:\n  {}",
        broken.join("\n  ")
    );
}

#[test]
fn the_readme_links_every_doc_and_deployment() {
    let readme = read(&root().join("README.md"));
    let linked = links(&readme);
    let mut wanted: Vec<String> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| format!("docs/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    wanted.extend(
        [
            "deploy/kubernetes/sidecar/README.md",
            "deploy/kubernetes/scale-out/README.md",
            "deploy/Dockerfile",
            "deploy/docker-compose.yml",
            "deploy/docker-compose.redis.yml",
            "deploy/systemd/hookgate.service",
            "deploy/prometheus/hookgate-alerts.yaml",
        ]
        .map(str::to_owned),
    );
    for doc in wanted {
        assert!(
            linked
                .iter()
                .any(|l| l.split('#').next() == Some(doc.as_str())),
            "README.md does not link {doc}"
        );
    }
}
