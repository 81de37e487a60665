//! The personal-data scan: every file under a network's directory (each
//! node's store, keys, TLS files and log) searched for every synthetic
//! person's full name, NI number and DBS certificate number in clear. A
//! control planted in the directory first proves the search finds what is
//! there.

use std::path::{Path, PathBuf};

use aho_corasick::AhoCorasick;
use anyhow::{Context, Result};

/// The personal values of a synthetic HR export: each row's full name, NI
/// number and DBS certificate number.
pub fn personal_values(csv: &str) -> Result<Vec<String>> {
    let mut rd = csv::Reader::from_reader(csv.as_bytes());
    let headers = rd.headers().context("the export has no header")?.clone();
    let cols: Vec<usize> = ["full_name", "ni_number", "dbs_certificate"]
        .iter()
        .filter_map(|c| headers.iter().position(|h| h == *c))
        .collect();
    let mut out = Vec::new();
    for row in rd.records() {
        let row = row.context("a row of the export")?;
        out.extend(cols.iter().filter_map(|c| row.get(*c)).filter(|v| v.len() >= 6).map(str::to_string));
    }
    Ok(out)
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Found {
    /// Files read.
    pub files: usize,
    /// Bytes read.
    pub bytes: u64,
    /// Files holding any of the values, with the first value found.
    pub hits: Vec<(PathBuf, String)>,
}

/// Appends every regular file under `dir` to `out` (symlinks are not followed).
pub fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => walk(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

/// Searches every file under `root` for any of `values`.
pub fn scan(root: &Path, values: &[String]) -> Result<Found> {
    let ac = AhoCorasick::new(values).context("building the search")?;
    let mut files = Vec::new();
    walk(root, &mut files);
    let mut found = Found::default();
    for f in files {
        let Ok(bytes) = std::fs::read(&f) else { continue };
        found.files += 1;
        found.bytes += bytes.len() as u64;
        if let Some(m) = ac.find(&bytes) {
            found.hits.push((f, values[m.pattern().as_usize()].clone()));
        }
    }
    Ok(found)
}

/// Scans `root`, after proving with a planted file that the search finds
/// a value in clear (the file is removed again).
pub fn scan_with_control(root: &Path, values: &[String]) -> Result<(bool, Found)> {
    let planted = root.join("scan-control.txt");
    let first = values.first().context("no values to search for")?;
    std::fs::write(&planted, format!("control: {first}\n")).context("planting the scan control")?;
    let control = scan(root, values)?.hits.iter().any(|(p, _)| *p == planted);
    std::fs::remove_file(&planted).context("removing the scan control")?;
    Ok((control, scan(root, values)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_finds_values_in_clear_and_nothing_else() {
        let csv = "assignment_number,full_name,ni_number,dbs_certificate\n1,Alex Testperson,ZZ123456A,001234567890\n";
        let values = personal_values(csv).unwrap();
        assert_eq!(values, ["Alex Testperson", "ZZ123456A", "001234567890"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("clean"), b"nothing here").unwrap();
        let (control, found) = scan_with_control(dir.path(), &values).unwrap();
        assert!(control, "the planted value was found");
        assert!(found.hits.is_empty(), "{:?}", found.hits);
        assert!(!dir.path().join("scan-control.txt").exists());
        std::fs::create_dir(dir.path().join("db")).unwrap();
        std::fs::write(dir.path().join("db/log"), b"...ZZ123456A...").unwrap();
        let found = scan(dir.path(), &values).unwrap();
        assert_eq!(found.hits, vec![(dir.path().join("db/log"), "ZZ123456A".to_string())]);
    }
}
