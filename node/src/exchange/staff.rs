//! Staff records at the home trust, and their import from an ESR-style CSV
//! export or JSON.
//!
//! A record is keyed by the staff member's pseudonymous reference, derived
//! from the assignment number with a keyed hash (so re-importing the same
//! assignment updates it, and store keys reveal nothing). Values live in an
//! encrypted tree. Import validates every row and reports each rejected
//! row by line number and reason — never its contents.
//!
//! ## CSV columns (header names, in any order)
//!
//! Required: `assignment_number`, `full_name`, `ni_number`, `date_of_birth`,
//! `job_role`, `assignment_start`. Optional: `assignment_end`,
//! `identity_verified`, `registration_body` (GMC, NMC, HCPC, GPhC, GDC,
//! GOC, SWE), `registration_number`, `registration_expires`,
//! `right_to_work`, `right_to_work_checked`, `right_to_work_expires`,
//! `dbs_level` (basic, standard, enhanced, enhanced-barred),
//! `dbs_certificate`, `dbs_issued`, `dbs_update_service` (yes/no),
//! `dbs_recheck`, `references_checked`, `references_count`, `oh_cleared`,
//! `oh_epp` (yes/no), `oh_review`; and one column pair per immunisation and
//! CSTF subject: `immunisation:<vaccine>/completed` with
//! `immunisation:<vaccine>/expires`, and `training:<subject>/completed`
//! with `training:<subject>/refresher_months` (and optionally
//! `training:<subject>/level`, default 1). Dates are YYYY-MM-DD. Empty
//! cells mean "not recorded".

use std::collections::{BTreeMap, HashSet};

use staffpass_protocol::Date;
use staffpass_protocol::claims::{
    Assignment, Claim, ClaimKind, CstfSubject, Dbs, Identity, ImmunisationRecord, NiNumber, OhClearance, References,
    Registration, RightToWork, Training, Vaccine,
};

/// Longest accepted cell, in bytes.
pub const MAX_FIELD: usize = 256;
/// Most rows in one import.
pub const MAX_ROWS: usize = 200_000;
/// Most rows listed in an import report.
pub const MAX_REPORTED: usize = 1_000;

pub use staffpass_api::staff::{StaffInput, StaffRecord};

/// A parsed import: the good rows with their line numbers, and the refused ones.
pub type Parsed = (Vec<(u64, StaffInput)>, Vec<RowError>);

pub use staffpass_api::staff::{ImportReport, RowError};

/// A file-level problem: nothing can be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The header is missing required columns or has unknown ones.
    #[error("bad header: {0}")]
    Header(String),
    /// Too many rows.
    #[error("more than {max} rows in one import; split the file")]
    TooManyRows {
        /// The limit.
        max: usize,
    },
    /// The body is not valid JSON of the expected shape.
    #[error("not a JSON array of staff records: {0}")]
    Json(String),
}

fn row_err(line: u64, column: Option<&str>, code: &'static str, message: impl Into<String>) -> RowError {
    RowError { line, column: column.map(str::to_string), code: code.to_owned(), message: message.into() }
}

const REQUIRED: &[&str] =
    &["assignment_number", "full_name", "ni_number", "date_of_birth", "job_role", "assignment_start"];
const OPTIONAL: &[&str] = &[
    "assignment_end",
    "identity_verified",
    "registration_body",
    "registration_number",
    "registration_expires",
    "right_to_work",
    "right_to_work_checked",
    "right_to_work_expires",
    "dbs_level",
    "dbs_certificate",
    "dbs_issued",
    "dbs_update_service",
    "dbs_recheck",
    "references_checked",
    "references_count",
    "oh_cleared",
    "oh_epp",
    "oh_review",
];

fn known_column(name: &str) -> bool {
    if REQUIRED.contains(&name) || OPTIONAL.contains(&name) {
        return true;
    }
    let Some((claim, field)) = name.split_once('/') else { return false };
    match claim.parse::<ClaimKind>() {
        Ok(ClaimKind::Immunisation(_)) => matches!(field, "completed" | "expires"),
        Ok(ClaimKind::Training(_)) => matches!(field, "completed" | "refresher_months" | "level"),
        _ => false,
    }
}

/// One CSV row, by column name.
struct Row<'a> {
    line: u64,
    cells: BTreeMap<&'a str, &'a str>,
}

impl<'a> Row<'a> {
    fn opt(&self, col: &str) -> Option<&'a str> {
        self.cells.get(col).copied().map(str::trim).filter(|s| !s.is_empty())
    }
    fn req(&self, col: &'static str) -> Result<&'a str, RowError> {
        self.opt(col).ok_or_else(|| row_err(self.line, Some(col), "missing", format!("{col} is required")))
    }
    fn date(&self, col: &str) -> Result<Option<Date>, RowError> {
        self.opt(col)
            .map(|s| {
                s.parse::<Date>()
                    .map_err(|_| row_err(self.line, Some(col), "bad-date", "not a real date in the form YYYY-MM-DD"))
            })
            .transpose()
    }
    fn req_date(&self, col: &'static str) -> Result<Date, RowError> {
        self.date(col)?.ok_or_else(|| row_err(self.line, Some(col), "missing", format!("{col} is required")))
    }
    fn flag(&self, col: &str) -> Result<bool, RowError> {
        match self.opt(col).map(str::to_ascii_lowercase).as_deref() {
            None | Some("no" | "n" | "false" | "0") => Ok(false),
            Some("yes" | "y" | "true" | "1") => Ok(true),
            Some(_) => Err(row_err(self.line, Some(col), "bad-flag", "expected yes or no")),
        }
    }
    fn number<T: std::str::FromStr>(&self, col: &str) -> Result<Option<T>, RowError> {
        self.opt(col)
            .map(|s| s.parse::<T>().map_err(|_| row_err(self.line, Some(col), "bad-number", "not a whole number")))
            .transpose()
    }
    fn parse<T: std::str::FromStr>(&self, col: &str, code: &'static str, what: &str) -> Result<Option<T>, RowError> {
        self.opt(col)
            .map(|s| s.parse::<T>().map_err(|_| row_err(self.line, Some(col), code, format!("not a valid {what}"))))
            .transpose()
    }
}

fn row_to_input(row: &Row<'_>) -> Result<StaffInput, RowError> {
    let line = row.line;
    let assignment_number = row.req("assignment_number")?.to_string();
    let start = row.req_date("assignment_start")?;
    let dob = row.req_date("date_of_birth")?;
    let ni: NiNumber = row.req("ni_number")?.parse().map_err(|_| {
        row_err(line, Some("ni_number"), "bad-ni-number", "not a National Insurance number (e.g. AB123456C)")
    })?;
    let mut claims = vec![
        Claim::Identity(Identity {
            full_name: row.req("full_name")?.to_string(),
            date_of_birth: dob,
            ni_number: ni,
            verified_on: row.date("identity_verified")?.unwrap_or(start),
        }),
        Claim::EmploymentAssignment(Assignment {
            assignment_number: assignment_number.clone(),
            job_role: row.req("job_role")?.to_string(),
            start,
            end: row.date("assignment_end")?,
        }),
    ];
    if let Some(body) =
        row.parse("registration_body", "bad-regulator", "regulator (GMC, NMC, HCPC, GPhC, GDC, GOC, SWE)")?
    {
        claims.push(Claim::ProfessionalRegistration(Registration {
            regulator: body,
            number: row.req("registration_number")?.to_string(),
            expires_on: row.date("registration_expires")?,
        }));
    }
    if let Some(basis) = row.opt("right_to_work") {
        claims.push(Claim::RightToWork(RightToWork {
            basis: basis.to_string(),
            checked_on: row.req_date("right_to_work_checked")?,
            expires_on: row.date("right_to_work_expires")?,
        }));
    }
    if let Some(level) =
        row.parse("dbs_level", "bad-dbs-level", "DBS level (basic, standard, enhanced, enhanced-barred)")?
    {
        claims.push(Claim::Dbs(Dbs {
            level,
            certificate_number: row.req("dbs_certificate")?.to_string(),
            issued_on: row.req_date("dbs_issued")?,
            update_service: row.flag("dbs_update_service")?,
            recheck_on: row.date("dbs_recheck")?,
        }));
    }
    if let Some(checked) = row.date("references_checked")? {
        claims.push(Claim::References(References {
            count: row.number("references_count")?.unwrap_or(2),
            checked_on: checked,
        }));
    }
    if let Some(cleared) = row.date("oh_cleared")? {
        claims.push(Claim::OccupationalHealth(OhClearance {
            cleared_on: cleared,
            epp_cleared: row.flag("oh_epp")?,
            review_on: row.date("oh_review")?,
        }));
    }
    for v in Vaccine::ALL {
        let base = format!("immunisation:{v}");
        if let Some(done) = row.date(&format!("{base}/completed"))? {
            claims.push(Claim::Immunisation(
                *v,
                ImmunisationRecord { completed_on: done, expires_on: row.date(&format!("{base}/expires"))? },
            ));
        }
    }
    for s in CstfSubject::ALL {
        let base = format!("training:{s}");
        if let Some(done) = row.date(&format!("{base}/completed"))? {
            let months_col = format!("{base}/refresher_months");
            let months: u16 = row.number(&months_col)?.ok_or_else(|| {
                row_err(line, Some(&months_col), "missing", "a refresher period is needed with a completion date")
            })?;
            claims.push(Claim::Training(
                *s,
                Training {
                    level: row.number(&format!("{base}/level"))?.unwrap_or(1),
                    completed_on: done,
                    refresher_months: months,
                },
            ));
        }
    }
    Ok(StaffInput { assignment_number, claims, staff_key: None })
}

/// Checks an input's claims: well formed, one per kind, identity and
/// assignment present, and dates not in the future.
pub fn validate_input(input: &StaffInput, line: u64, today: Date) -> Result<(), RowError> {
    if input.assignment_number.is_empty()
        || input.assignment_number.len() > 32
        || !input.assignment_number.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'/')
    {
        return Err(row_err(
            line,
            Some("assignment_number"),
            "bad-assignment-number",
            "1 to 32 letters, digits, '-' or '/'",
        ));
    }
    let mut seen = HashSet::new();
    for c in &input.claims {
        let kind = c.kind();
        if !seen.insert(kind) {
            return Err(row_err(line, Some(&kind.to_string()), "duplicate-claim", "the same check appears twice"));
        }
        c.validate().map_err(|e| row_err(line, Some(&kind.to_string()), "invalid-claim", e.to_string()))?;
        if let Claim::Identity(i) = c
            && (i.date_of_birth > today || i.date_of_birth < today.plus_days(-120 * 366))
        {
            return Err(row_err(line, Some("date_of_birth"), "bad-date", "date of birth is not plausible"));
        }
        let done = match c {
            Claim::Training(_, t) => Some(t.completed_on),
            Claim::Immunisation(_, r) => Some(r.completed_on),
            Claim::Dbs(d) => Some(d.issued_on),
            Claim::OccupationalHealth(o) => Some(o.cleared_on),
            Claim::References(r) => Some(r.checked_on),
            Claim::RightToWork(r) => Some(r.checked_on),
            _ => None,
        };
        if done.is_some_and(|d| d > today) {
            return Err(row_err(
                line,
                Some(&kind.to_string()),
                "future-date",
                "a check cannot be completed in the future",
            ));
        }
    }
    for needed in [ClaimKind::Identity, ClaimKind::EmploymentAssignment] {
        if !seen.contains(&needed) {
            return Err(row_err(line, Some(&needed.to_string()), "missing", format!("{needed} is required")));
        }
    }
    Ok(())
}

/// Parses and validates a CSV export. Rows are checked one at a time; the
/// good ones come back with their line numbers.
pub fn parse_csv(bytes: &[u8], today: Date) -> Result<Parsed, FileError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(bytes);
    let headers =
        rdr.byte_headers().map_err(|e| FileError::Header(format!("cannot read the header line: {e}")))?.clone();
    let mut names = Vec::with_capacity(headers.len());
    let mut seen = HashSet::new();
    for h in headers.iter() {
        let name = std::str::from_utf8(h).map_err(|_| FileError::Header("the header is not UTF-8".into()))?;
        let name = name.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
        if !known_column(&name) {
            return Err(FileError::Header(format!(
                "unknown column {:?}: columns are the fixed staff fields and <claim>/<field> pairs for immunisations and training (see the import guide)",
                name.chars().take(64).collect::<String>()
            )));
        }
        if !seen.insert(name.clone()) {
            return Err(FileError::Header(format!("column {name:?} appears twice")));
        }
        names.push(name);
    }
    for r in REQUIRED {
        if !seen.contains(*r) {
            return Err(FileError::Header(format!("required column {r:?} is missing")));
        }
    }
    let mut good = Vec::new();
    let mut errors = Vec::new();
    let mut assignments: HashSet<String> = HashSet::new();
    let mut record = csv::ByteRecord::new();
    let mut rows = 0usize;
    let mut lines = Lines { bytes, at: 0, line: 1 };
    loop {
        let line = lines.of(rdr.position().byte());
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                errors.push(row_err(line, None, "bad-csv", format!("cannot parse this line: {}", csv_error_kind(&e))));
                if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
                continue;
            }
        }
        rows += 1;
        if rows > MAX_ROWS {
            return Err(FileError::TooManyRows { max: MAX_ROWS });
        }
        let line = record.position().map_or(line, |p| lines.of(p.byte()));
        match check_row(&names, &record, line, today) {
            Ok(input) => {
                if !assignments.insert(input.assignment_number.clone()) {
                    errors.push(row_err(
                        line,
                        Some("assignment_number"),
                        "duplicate-assignment",
                        "the same assignment number appears earlier in this file",
                    ));
                } else {
                    good.push((line, input));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    Ok((good, errors))
}

/// The line (from 1) of byte offsets of a file, asked for in increasing
/// order, with `\r\n`, `\n` and a lone `\r` each ending a line, as an
/// editor counts them. (The csv reader's own line count sees only `\n`
/// and is one short after a CRLF header: every row of a file with lone CRs
/// was line 1, found by fuzzing.)
struct Lines<'a> {
    bytes: &'a [u8],
    at: usize,
    line: u64,
}

impl Lines<'_> {
    /// The line of the first byte at or after `offset` that ends no line
    /// (a record's position can be the end of the line before it).
    fn of(&mut self, offset: u64) -> u64 {
        let end = usize::try_from(offset).unwrap_or(usize::MAX).min(self.bytes.len());
        while self.at < self.bytes.len() && (self.at < end || matches!(self.bytes[self.at], b'\r' | b'\n')) {
            match self.bytes[self.at] {
                b'\n' => self.line += 1,
                b'\r' if self.bytes.get(self.at + 1) != Some(&b'\n') => self.line += 1,
                _ => {}
            }
            self.at += 1;
        }
        self.line
    }
}

fn csv_error_kind(e: &csv::Error) -> &'static str {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text",
        csv::ErrorKind::UnequalLengths { .. } => "wrong number of fields",
        csv::ErrorKind::Io(_) => "read error",
        _ => "malformed CSV",
    }
}

fn check_row(names: &[String], record: &csv::ByteRecord, line: u64, today: Date) -> Result<StaffInput, RowError> {
    if record.len() != names.len() {
        return Err(row_err(line, None, "bad-csv", format!("{} fields, the header has {}", record.len(), names.len())));
    }
    let mut cells = BTreeMap::new();
    for (name, cell) in names.iter().zip(record.iter()) {
        if cell.len() > MAX_FIELD {
            return Err(row_err(line, Some(name), "field-too-long", format!("longer than {MAX_FIELD} bytes")));
        }
        let text =
            std::str::from_utf8(cell).map_err(|_| row_err(line, Some(name), "bad-encoding", "not UTF-8 text"))?;
        cells.insert(name.as_str(), text);
    }
    let input = row_to_input(&Row { line, cells })?;
    validate_input(&input, line, today)?;
    Ok(input)
}

/// Parses and validates a JSON array of [`StaffInput`].
pub fn parse_json(bytes: &[u8], today: Date) -> Result<Parsed, FileError> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(bytes).map_err(|e| FileError::Json(e.to_string()))?;
    if items.len() > MAX_ROWS {
        return Err(FileError::TooManyRows { max: MAX_ROWS });
    }
    let mut good = Vec::new();
    let mut errors = Vec::new();
    let mut assignments = HashSet::new();
    for (i, v) in items.into_iter().enumerate() {
        let line = i as u64 + 1;
        let input: StaffInput = match serde_json::from_value(v) {
            Ok(x) => x,
            Err(e) => {
                // serde's message names the field but not its value.
                errors.push(row_err(line, None, "bad-record", e.to_string().chars().take(200).collect::<String>()));
                continue;
            }
        };
        if let Err(e) = validate_input(&input, line, today) {
            errors.push(e);
            continue;
        }
        if !assignments.insert(input.assignment_number.clone()) {
            errors.push(row_err(
                line,
                Some("assignment_number"),
                "duplicate-assignment",
                "the same assignment number appears earlier",
            ));
            continue;
        }
        good.push((line, input));
    }
    Ok((good, errors))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        "2026-11-23".parse().unwrap()
    }

    const HEADER: &str = "assignment_number,full_name,ni_number,date_of_birth,job_role,assignment_start,dbs_level,dbs_certificate,dbs_issued,training:fire-safety/completed,training:fire-safety/refresher_months";

    #[test]
    fn a_good_row_becomes_claims() {
        let csv = format!(
            "{HEADER}\n12345678-1,Sam Example,ZZ123456A,1990-01-01,Nurse,2024-01-01,enhanced,0012,2024-01-01,2026-01-01,12\n"
        );
        let (good, errors) = parse_csv(csv.as_bytes(), today()).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(good.len(), 1);
        let kinds: Vec<String> = good[0].1.claims.iter().map(|c| c.kind().to_string()).collect();
        assert_eq!(kinds, ["identity", "employment-assignment", "dbs", "training:fire-safety"]);
    }

    #[test]
    fn bad_rows_are_reported_by_line_without_their_contents() {
        let long = "x".repeat(10_000);
        let csv = format!(
            "{HEADER}\n\
             A1,Sam Example,NOTANI,1990-01-01,Nurse,2024-01-01,,,,,\n\
             A2,Sam Example,ZZ123456A,1990-02-30,Nurse,2024-01-01,,,,,\n\
             A3,{long},ZZ123456A,1990-01-01,Nurse,2024-01-01,,,,,\n\
             A4,Sam Example,ZZ123456A,1990-01-01,Nurse,2024-01-01,,,,,\n\
             A4,Sam Example,ZZ123456A,1990-01-01,Nurse,2024-01-01,,,,,\n"
        );
        let (good, errors) = parse_csv(csv.as_bytes(), today()).unwrap();
        assert_eq!(good.len(), 1);
        let got: Vec<(u64, &str)> = errors.iter().map(|e| (e.line, e.code.as_str())).collect();
        assert_eq!(got, [(2, "bad-ni-number"), (3, "bad-date"), (4, "field-too-long"), (6, "duplicate-assignment")]);
        let text = serde_json::to_string(&errors).unwrap();
        assert!(!text.contains("NOTANI") && !text.contains("Sam Example"), "{text}");
    }

    #[test]
    fn unknown_columns_and_bad_encoding() {
        let csv = format!("{HEADER},training:knitting/completed\n");
        assert!(matches!(parse_csv(csv.as_bytes(), today()), Err(FileError::Header(_))));
        let mut bytes = format!("{HEADER}\nA1,").into_bytes();
        bytes.extend([0xff, 0xfe, b'x']);
        bytes.extend(b",ZZ123456A,1990-01-01,Nurse,2024-01-01,,,,,\n");
        let (good, errors) = parse_csv(&bytes, today()).unwrap();
        assert!(good.is_empty());
        assert_eq!(errors[0].code, "bad-encoding");
    }
}
