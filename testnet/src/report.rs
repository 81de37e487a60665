//! A scenario's one-screen report: what happened, in order, and the
//! checks that were made, each passed or missed.

use std::time::Instant;

/// A report under construction.
#[derive(Debug)]
pub struct Report {
    title: String,
    lines: Vec<String>,
    checks: Vec<(String, bool)>,
    started: Instant,
    live: bool,
}

impl Report {
    /// A report titled `title`; with `live`, lines are printed as they come.
    pub fn new(title: &str, live: bool) -> Self {
        if live {
            println!("== {title}");
        }
        Report { title: title.to_string(), lines: Vec::new(), checks: Vec::new(), started: Instant::now(), live }
    }

    /// A line of the story.
    pub fn line(&mut self, text: impl Into<String>) {
        let text = text.into();
        if self.live {
            println!("{text}");
        }
        self.lines.push(text);
    }

    /// Records a check; returns whether it passed.
    pub fn check(&mut self, what: impl Into<String>, ok: bool) -> bool {
        let what = what.into();
        if self.live && !ok {
            println!("   MISSED: {what}");
        }
        self.checks.push((what, ok));
        ok
    }

    /// True if every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|(_, ok)| *ok)
    }

    /// The missed checks.
    pub fn missed(&self) -> Vec<&str> {
        self.checks.iter().filter(|(_, ok)| !ok).map(|(w, _)| w.as_str()).collect()
    }

    /// Prints the report (the story again unless it was live) and the checks.
    pub fn print(&self) {
        if !self.live {
            println!("== {}", self.title);
            for l in &self.lines {
                println!("{l}");
            }
        }
        let passed = self.checks.iter().filter(|(_, ok)| *ok).count();
        let secs = self.started.elapsed().as_secs_f64();
        if self.passed() {
            println!("-- {}: all {passed} checks passed ({secs:.1} s)", self.title);
        } else {
            println!(
                "-- {}: {} of {} checks MISSED ({secs:.1} s):",
                self.title,
                self.checks.len() - passed,
                self.checks.len()
            );
            for m in self.missed() {
                println!("   - {m}");
            }
        }
    }
}
