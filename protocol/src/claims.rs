//! The claim catalogue: what a passport can say about a member of staff.
//!
//! It follows the national Digital Staff Passport catalogue: identity,
//! right to work, DBS, professional registration, employment assignment,
//! temporary placement, references, occupational health clearance,
//! immunisations, and one claim per Core Skills Training Framework subject.
//! Each claim knows until when it is in date, so a host trust sees what is
//! still valid.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::datetime::{Date, truncate};

/// A claim that is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not a claim name from the catalogue.
    #[error(
        "{input:?} is not a claim in the catalogue (see `ClaimKind::ALL`, e.g. identity, dbs, training:fire-safety)"
    )]
    UnknownClaim {
        /// What was given.
        input: String,
    },
    /// Not one of the names this field takes.
    #[error("{input:?} is not a valid {what}; expected one of: {expected}")]
    UnknownName {
        /// What kind of name.
        what: &'static str,
        /// What was given.
        input: String,
        /// The names accepted.
        expected: String,
    },
    /// A text field is empty or too long.
    #[error("{field} must be 1 to {max} characters")]
    BadText {
        /// Which field.
        field: &'static str,
        /// Its limit.
        max: usize,
    },
    /// Not a National Insurance number.
    #[error("not a National Insurance number: expected two letters, six digits and A, B, C or D (e.g. AB123456C)")]
    BadNiNumber,
    /// A date is in the wrong order with another.
    #[error("{field} cannot be before {other}")]
    DateOrder {
        /// The later field.
        field: &'static str,
        /// The earlier field.
        other: &'static str,
    },
    /// A number is outside its range.
    #[error("{field} must be between {min} and {max}")]
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// Minimum.
        min: u32,
        /// Maximum.
        max: u32,
    },
}

macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),* }

        impl $name {
            /// Every value, in catalogue order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            /// The stable name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }
        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result { f.write_str(self.as_str()) }
        }
        impl ::std::str::FromStr for $name {
            type Err = $crate::claims::Error;
            fn from_str(s: &str) -> Result<Self, $crate::claims::Error> {
                match s {
                    $($text => Ok($name::$variant),)*
                    _ => Err($crate::claims::Error::UnknownName {
                        what: stringify!($name),
                        input: $crate::datetime::truncate(s),
                        expected: [$($text),*].join(", "),
                    }),
                }
            }
        }
        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_str(self.as_str()) }
        }
        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use named_enum;

named_enum!(
    /// The eleven Core Skills Training Framework subjects (England).
    CstfSubject {
        /// Conflict resolution.
        ConflictResolution => "conflict-resolution",
        /// Equality, diversity and human rights.
        EqualityDiversityHumanRights => "equality-diversity-human-rights",
        /// Fire safety.
        FireSafety => "fire-safety",
        /// Health, safety and welfare.
        HealthSafetyWelfare => "health-safety-welfare",
        /// Infection prevention and control.
        InfectionPreventionControl => "infection-prevention-control",
        /// Information governance and data security.
        InformationGovernance => "information-governance",
        /// Moving and handling.
        MovingHandling => "moving-handling",
        /// Preventing radicalisation.
        PreventingRadicalisation => "preventing-radicalisation",
        /// Resuscitation.
        Resuscitation => "resuscitation",
        /// Safeguarding adults.
        SafeguardingAdults => "safeguarding-adults",
        /// Safeguarding children.
        SafeguardingChildren => "safeguarding-children",
    }
);

named_enum!(
    /// Immunisations recorded by occupational health.
    Vaccine {
        /// Hepatitis B.
        HepatitisB => "hepatitis-b",
        /// Measles, mumps and rubella.
        Mmr => "mmr",
        /// Varicella (chickenpox).
        Varicella => "varicella",
        /// Tuberculosis (BCG or screening).
        Tuberculosis => "tb",
    }
);

named_enum!(
    /// DBS check levels.
    DbsLevel {
        /// Basic.
        Basic => "basic",
        /// Standard.
        Standard => "standard",
        /// Enhanced.
        Enhanced => "enhanced",
        /// Enhanced with a barred list check.
        EnhancedBarred => "enhanced-barred",
    }
);

named_enum!(
    /// Professional regulators.
    Regulator {
        /// General Medical Council.
        Gmc => "GMC",
        /// Nursing and Midwifery Council.
        Nmc => "NMC",
        /// Health and Care Professions Council.
        Hcpc => "HCPC",
        /// General Pharmaceutical Council.
        Gphc => "GPhC",
        /// General Dental Council.
        Gdc => "GDC",
        /// General Optical Council.
        Goc => "GOC",
        /// Social Work England.
        Swe => "SWE",
    }
);

/// Which claim: the unit a staff member consents to share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ClaimKind {
    /// Verified identity.
    Identity,
    /// Right to work in the UK.
    RightToWork,
    /// DBS check.
    Dbs,
    /// Professional registration (GMC, NMC, HCPC, ...).
    ProfessionalRegistration,
    /// Current employment assignment.
    EmploymentAssignment,
    /// A temporary placement elsewhere.
    TemporaryPlacement,
    /// Employment references.
    References,
    /// Occupational health clearance.
    OccupationalHealth,
    /// One immunisation.
    Immunisation(Vaccine),
    /// One CSTF subject.
    Training(CstfSubject),
}

impl ClaimKind {
    /// The whole catalogue, in order.
    pub fn all() -> Vec<ClaimKind> {
        let mut v = vec![
            ClaimKind::Identity,
            ClaimKind::RightToWork,
            ClaimKind::Dbs,
            ClaimKind::ProfessionalRegistration,
            ClaimKind::EmploymentAssignment,
            ClaimKind::TemporaryPlacement,
            ClaimKind::References,
            ClaimKind::OccupationalHealth,
        ];
        v.extend(Vaccine::ALL.iter().map(|v| ClaimKind::Immunisation(*v)));
        v.extend(CstfSubject::ALL.iter().map(|s| ClaimKind::Training(*s)));
        v
    }
}

impl fmt::Display for ClaimKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimKind::Identity => f.write_str("identity"),
            ClaimKind::RightToWork => f.write_str("right-to-work"),
            ClaimKind::Dbs => f.write_str("dbs"),
            ClaimKind::ProfessionalRegistration => f.write_str("professional-registration"),
            ClaimKind::EmploymentAssignment => f.write_str("employment-assignment"),
            ClaimKind::TemporaryPlacement => f.write_str("temporary-placement"),
            ClaimKind::References => f.write_str("references"),
            ClaimKind::OccupationalHealth => f.write_str("occupational-health"),
            ClaimKind::Immunisation(v) => write!(f, "immunisation:{v}"),
            ClaimKind::Training(s) => write!(f, "training:{s}"),
        }
    }
}

impl FromStr for ClaimKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let unknown = || Error::UnknownClaim { input: truncate(s) };
        Ok(match s {
            "identity" => ClaimKind::Identity,
            "right-to-work" => ClaimKind::RightToWork,
            "dbs" => ClaimKind::Dbs,
            "professional-registration" => ClaimKind::ProfessionalRegistration,
            "employment-assignment" => ClaimKind::EmploymentAssignment,
            "temporary-placement" => ClaimKind::TemporaryPlacement,
            "references" => ClaimKind::References,
            "occupational-health" => ClaimKind::OccupationalHealth,
            _ => {
                if let Some(v) = s.strip_prefix("immunisation:") {
                    ClaimKind::Immunisation(v.parse().map_err(|_| unknown())?)
                } else if let Some(t) = s.strip_prefix("training:") {
                    ClaimKind::Training(t.parse().map_err(|_| unknown())?)
                } else {
                    return Err(unknown());
                }
            }
        })
    }
}

impl Serialize for ClaimKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClaimKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A UK National Insurance number, validated for format (two prefix
/// letters within HMRC's character rules, six digits, suffix A to D).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NiNumber(String);

impl NiNumber {
    /// The number, without spaces.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NiNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NiNumber(..)")
    }
}

impl FromStr for NiNumber {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let c: String = s.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_uppercase();
        let b = c.as_bytes();
        let ok = b.len() == 9
            && b[0].is_ascii_uppercase()
            && b[1].is_ascii_uppercase()
            && !b"DFIQUV".contains(&b[0])
            && !b"DFIQUVO".contains(&b[1])
            && b[2..8].iter().all(u8::is_ascii_digit)
            && b"ABCD".contains(&b[8]);
        if ok { Ok(NiNumber(c)) } else { Err(Error::BadNiNumber) }
    }
}

impl TryFrom<String> for NiNumber {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<NiNumber> for String {
    fn from(n: NiNumber) -> String {
        n.0
    }
}

/// Verified identity.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Full name as verified.
    pub full_name: String,
    /// Date of birth.
    pub date_of_birth: Date,
    /// National Insurance number.
    pub ni_number: NiNumber,
    /// When identity was verified.
    pub verified_on: Date,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Identity(..)")
    }
}

/// Right to work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RightToWork {
    /// The basis, e.g. `british-citizen`, `settled-status`, `skilled-worker-visa`.
    pub basis: String,
    /// When it was checked.
    pub checked_on: Date,
    /// When the permission ends, if it does.
    pub expires_on: Option<Date>,
}

/// A DBS check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dbs {
    /// Level.
    pub level: DbsLevel,
    /// Certificate number.
    pub certificate_number: String,
    /// Issue date.
    pub issued_on: Date,
    /// Subscribed to the DBS update service.
    pub update_service: bool,
    /// When the employer's policy calls for a recheck, if set.
    pub recheck_on: Option<Date>,
}

/// Professional registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The regulator.
    pub regulator: Regulator,
    /// Registration number.
    pub number: String,
    /// Renewal date, if any.
    pub expires_on: Option<Date>,
}

/// Employment assignment at the home trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    /// ESR assignment number.
    pub assignment_number: String,
    /// Job role.
    pub job_role: String,
    /// Start date.
    pub start: Date,
    /// End date, for fixed-term assignments.
    pub end: Option<Date>,
}

/// A temporary placement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Where, as described by the home trust.
    pub description: String,
    /// Start date.
    pub start: Date,
    /// End date.
    pub end: Date,
}

/// Employment references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct References {
    /// How many satisfactory references.
    pub count: u8,
    /// When they were checked.
    pub checked_on: Date,
}

/// Occupational health clearance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OhClearance {
    /// When cleared.
    pub cleared_on: Date,
    /// Cleared for exposure-prone procedures.
    pub epp_cleared: bool,
    /// When it is to be reviewed, if set.
    pub review_on: Option<Date>,
}

/// Evidence of one immunisation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImmunisationRecord {
    /// When completed (course finished, or immunity shown).
    pub completed_on: Date,
    /// When a booster or re-test is due, if ever.
    pub expires_on: Option<Date>,
}

/// One CSTF subject's completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Training {
    /// CSTF level (1 to 3).
    pub level: u8,
    /// When completed.
    pub completed_on: Date,
    /// Refresher period in months (e.g. 12, 24, 36).
    pub refresher_months: u16,
}

/// A claim with its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Claim {
    /// Verified identity.
    Identity(Identity),
    /// Right to work.
    RightToWork(RightToWork),
    /// DBS check.
    Dbs(Dbs),
    /// Professional registration.
    ProfessionalRegistration(Registration),
    /// Employment assignment.
    EmploymentAssignment(Assignment),
    /// Temporary placement.
    TemporaryPlacement(Placement),
    /// References.
    References(References),
    /// Occupational health clearance.
    OccupationalHealth(OhClearance),
    /// One immunisation.
    Immunisation(Vaccine, ImmunisationRecord),
    /// One CSTF subject.
    Training(CstfSubject, Training),
}

/// Whether a claim is in date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "status")]
pub enum Validity {
    /// Has no end date.
    NoExpiry,
    /// In date until (and including) the day before `until`.
    InDate {
        /// First day it is no longer valid.
        until: Date,
        /// Days left.
        days_left: i32,
    },
    /// Out of date since `since`.
    Expired {
        /// First day it was no longer valid.
        since: Date,
    },
}

const MAX_TEXT: usize = 200;

fn text(field: &'static str, v: &str) -> Result<(), Error> {
    if v.is_empty() || v.chars().count() > MAX_TEXT {
        return Err(Error::BadText { field, max: MAX_TEXT });
    }
    Ok(())
}

fn order(later: Option<Date>, earlier: Date, field: &'static str, other: &'static str) -> Result<(), Error> {
    match later {
        Some(l) if l < earlier => Err(Error::DateOrder { field, other }),
        _ => Ok(()),
    }
}

impl Claim {
    /// Which claim this is.
    pub fn kind(&self) -> ClaimKind {
        match self {
            Claim::Identity(_) => ClaimKind::Identity,
            Claim::RightToWork(_) => ClaimKind::RightToWork,
            Claim::Dbs(_) => ClaimKind::Dbs,
            Claim::ProfessionalRegistration(_) => ClaimKind::ProfessionalRegistration,
            Claim::EmploymentAssignment(_) => ClaimKind::EmploymentAssignment,
            Claim::TemporaryPlacement(_) => ClaimKind::TemporaryPlacement,
            Claim::References(_) => ClaimKind::References,
            Claim::OccupationalHealth(_) => ClaimKind::OccupationalHealth,
            Claim::Immunisation(v, _) => ClaimKind::Immunisation(*v),
            Claim::Training(s, _) => ClaimKind::Training(*s),
        }
    }

    /// Checks field sizes, formats and date order.
    pub fn validate(&self) -> Result<(), Error> {
        match self {
            Claim::Identity(i) => {
                text("full_name", &i.full_name)?;
                order(Some(i.verified_on), i.date_of_birth, "verified_on", "date_of_birth")
            }
            Claim::RightToWork(r) => {
                text("basis", &r.basis)?;
                order(r.expires_on, r.checked_on, "expires_on", "checked_on")
            }
            Claim::Dbs(d) => {
                text("certificate_number", &d.certificate_number)?;
                order(d.recheck_on, d.issued_on, "recheck_on", "issued_on")
            }
            Claim::ProfessionalRegistration(r) => text("number", &r.number),
            Claim::EmploymentAssignment(a) => {
                text("assignment_number", &a.assignment_number)?;
                text("job_role", &a.job_role)?;
                order(a.end, a.start, "end", "start")
            }
            Claim::TemporaryPlacement(p) => {
                text("description", &p.description)?;
                order(Some(p.end), p.start, "end", "start")
            }
            Claim::References(r) => {
                if r.count == 0 || r.count > 10 {
                    return Err(Error::OutOfRange { field: "count", min: 1, max: 10 });
                }
                Ok(())
            }
            Claim::OccupationalHealth(o) => order(o.review_on, o.cleared_on, "review_on", "cleared_on"),
            Claim::Immunisation(_, r) => order(r.expires_on, r.completed_on, "expires_on", "completed_on"),
            Claim::Training(_, t) => {
                if !(1..=3).contains(&t.level) {
                    return Err(Error::OutOfRange { field: "level", min: 1, max: 3 });
                }
                if !(1..=120).contains(&t.refresher_months) {
                    return Err(Error::OutOfRange { field: "refresher_months", min: 1, max: 120 });
                }
                Ok(())
            }
        }
    }

    /// The first day on which this claim is no longer valid, if it ends.
    pub fn valid_until(&self) -> Option<Date> {
        match self {
            Claim::Identity(_) | Claim::References(_) => None,
            Claim::RightToWork(r) => r.expires_on,
            Claim::Dbs(d) => d.recheck_on,
            Claim::ProfessionalRegistration(r) => r.expires_on,
            Claim::EmploymentAssignment(a) => a.end,
            Claim::TemporaryPlacement(p) => Some(p.end.plus_days(1)),
            Claim::OccupationalHealth(o) => o.review_on,
            Claim::Immunisation(_, r) => r.expires_on,
            Claim::Training(_, t) => Some(t.completed_on.plus_months(u32::from(t.refresher_months))),
        }
    }

    /// Whether the claim is in date on `today`.
    pub fn validity(&self, today: Date) -> Validity {
        match self.valid_until() {
            None => Validity::NoExpiry,
            Some(until) if today < until => Validity::InDate { until, days_left: until.days() - today.days() },
            Some(since) => Validity::Expired { since },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_names_round_trip() {
        let all = ClaimKind::all();
        assert_eq!(all.len(), 8 + 4 + 11);
        for k in all {
            assert_eq!(k.to_string().parse::<ClaimKind>().unwrap(), k);
        }
        assert!("training:knitting".parse::<ClaimKind>().is_err());
    }

    #[test]
    fn ni_numbers() {
        assert!("AB 12 34 56 C".parse::<NiNumber>().is_ok());
        assert!("ZZ123456A".parse::<NiNumber>().is_ok());
        for bad in ["QQ123456C", "AO123456C", "AB123456E", "AB12345C", "A1123456C", ""] {
            assert!(bad.parse::<NiNumber>().is_err(), "{bad}");
        }
    }

    #[test]
    fn training_goes_out_of_date_after_its_refresher_period() {
        let c = Claim::Training(
            CstfSubject::FireSafety,
            Training { level: 1, completed_on: "2025-03-01".parse().unwrap(), refresher_months: 12 },
        );
        assert_eq!(c.valid_until(), Some("2026-03-01".parse().unwrap()));
        assert!(matches!(c.validity("2026-02-28".parse().unwrap()), Validity::InDate { days_left: 1, .. }));
        assert!(matches!(c.validity("2026-03-01".parse().unwrap()), Validity::Expired { .. }));
    }
}
