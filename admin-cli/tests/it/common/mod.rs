//! Helpers for running the real `staffpass-admin` binary in tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_staffpass-admin");

/// What a run of the binary did.
#[derive(Debug)]
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn of(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Asserts the exit code and a one-line error message, and returns it.
    #[track_caller]
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "expected exit {code}\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        let err = self.stderr.trim_end();
        assert_eq!(err.lines().count(), 1, "expected one line of error, got:\n{err}");
        assert!(err.starts_with("staffpass-admin: "), "{err}");
        for bad in ["panicked", "RUST_BACKTRACE", "Error {", "Os {", "kind:", "Custom {"] {
            assert!(!err.contains(bad), "looks like a debug dump: {err}");
        }
        err
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs the binary in `dir` with `args`, no stdin, and none of the
/// STAFFPASS_* variables of the test's environment.
pub fn admin(dir: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).args(args).stdin(Stdio::null()).env("COLUMNS", "100");
    for (k, _) in std::env::vars() {
        if k.starts_with("STAFFPASS_") {
            cmd.env_remove(k);
        }
    }
    Run::of(cmd.output().expect("run staffpass-admin"))
}

/// A file's bytes.
pub fn read(p: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(p).expect("read file")
}

/// The names of the files in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}
