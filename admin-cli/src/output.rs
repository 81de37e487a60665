//! Output: aligned tables and `label: value` lists for people, pretty JSON
//! for scripts (`--json`). Everything goes to stdout; notes and warnings
//! go to stderr so they never mix into JSON.

use std::io::Write;

use serde::Serialize;

use crate::error::{Error, Result};

/// How a command prints what it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Tables and lists for people.
    Human,
    /// One JSON document.
    Json,
}

impl Format {
    /// From the `--json` flag.
    pub fn from_flag(json: bool) -> Self {
        if json { Format::Json } else { Format::Human }
    }

    /// True for `--json`.
    pub fn is_json(self) -> bool {
        self == Format::Json
    }
}

/// Writes `text` to stdout.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(Error::Output)
}

/// Writes one line to stdout.
pub fn line(text: impl AsRef<str>) -> Result<()> {
    print(&format!("{}\n", text.as_ref()))
}

/// Writes a note to stderr (never mixed into JSON on stdout).
pub fn note(text: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr(), "{}", text.as_ref());
}

/// Prints `value` as pretty JSON.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Output(std::io::Error::other(e)))?;
    line(text)
}

/// Asks `question` on the terminal and returns if the answer is yes.
/// Without a terminal it refuses, saying how to `check` first and then
/// to pass --yes; a "no" is [`Error::Declined`].
pub fn confirm(question: &str, check: String) -> Result<()> {
    use std::io::{BufRead, IsTerminal};
    if !std::io::stdin().is_terminal() {
        return Err(Error::NeedConfirmation { check });
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(Error::Output)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES") { Ok(()) } else { Err(Error::Declined) }
}

/// A table with a header row.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names.
    pub fn new(headers: &[&str]) -> Self {
        Table { headers: headers.iter().map(|h| h.to_uppercase()).collect(), rows: Vec::new() }
    }

    /// Adds a row (missing cells are blank, extra ones dropped).
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut r: Vec<String> = cells.into_iter().map(Into::into).collect();
        r.resize(self.headers.len(), String::new());
        self.rows.push(r);
    }

    /// True if no rows were added.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, columns aligned, the last column not padded.
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            let mut l = String::new();
            for (i, c) in r.iter().enumerate() {
                if i + 1 == n {
                    l.push_str(c);
                } else {
                    l.push_str(c);
                    l.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table, or `empty` if it has no rows.
    pub fn print_or(&self, empty: &str) -> Result<()> {
        if self.is_empty() { line(empty) } else { print(&self.render()) }
    }
}

/// `label: value` lines, labels aligned.
#[derive(Debug, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// An empty list.
    pub fn new() -> Self {
        Fields::default()
    }

    /// Adds a field.
    pub fn add(&mut self, label: &str, value: impl Into<String>) -> &mut Self {
        self.0.push((label.to_owned(), value.into()));
        self
    }

    /// The list as text.
    pub fn render(&self) -> String {
        let w = self.0.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0);
        self.0.iter().map(|(l, v)| format!("{l}:{} {v}\n", " ".repeat(w - l.chars().count()))).collect()
    }

    /// Prints the list.
    pub fn print(&self) -> Result<()> {
        print(&self.render())
    }
}

/// An optional value as a table cell: `-` when absent.
pub fn or_dash<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The first `n` characters of `s`, with `…` if cut.
pub fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n { s.to_owned() } else { format!("{}…", s.chars().take(n).collect::<String>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let mut t = Table::new(&["org", "name"]);
        t.row(["RJZ", "King's"]);
        t.row(["ext:charity:1", "Hospice"]);
        assert_eq!(t.render(), "ORG            NAME\nRJZ            King's\next:charity:1  Hospice\n");
    }

    #[test]
    fn fields_align() {
        let mut f = Fields::new();
        f.add("a", "1").add("long", "2");
        assert_eq!(f.render(), "a:    1\nlong: 2\n");
    }
}
