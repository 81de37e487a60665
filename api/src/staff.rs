//! Staff records at the home trust, and their import (`hr`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use staffpass_protocol::claims::{Claim, ClaimKind};
use staffpass_protocol::{StaffPublicKey, StaffRef, Timestamp};
use utoipa::{IntoParams, ToSchema};

/// A staff member's record at the home trust (`GET`/`PUT /v1/staff/{ref}`).
/// `POST /v1/staff/{ref}/key` (admin): replace or remove a staff member's
/// registered key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StaffKeyRequest {
    /// The new key (`staff-pk:<hex>`), or null to remove it.
    #[schema(value_type = Option<crate::schema::StaffPublicKey>)]
    pub staff_key: Option<StaffPublicKey>,
}

/// `POST /v1/staff/{ref}/key-change` (hr): the staff member changes (or
/// removes) their own registered key, signed with that key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StaffKeyChangeRequest {
    /// The new key (`staff-pk:<hex>`), or null to remove it.
    #[schema(value_type = Option<crate::schema::StaffPublicKey>)]
    pub new_key: Option<StaffPublicKey>,
    /// When the staff member signed (within 10 minutes of the node's clock).
    #[schema(value_type = String, format = DateTime)]
    pub signed_at: staffpass_protocol::Timestamp,
    /// The old key's signature over the change
    /// (`staffpass_protocol::consent::StaffKeyChange`), hex.
    #[schema(value_type = crate::schema::Signature)]
    pub signature: staffpass_protocol::signing::Signature,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StaffRecord {
    /// Pseudonymous reference.
    #[schema(value_type = crate::schema::StaffRef)]
    pub staff_ref: StaffRef,
    /// ESR assignment number.
    pub assignment_number: String,
    /// The checks and training held, by claim.
    #[schema(value_type = Object)]
    pub claims: BTreeMap<ClaimKind, Claim>,
    /// The staff member's own key, if they hold one.
    #[schema(value_type = Option<crate::schema::StaffPublicKey>)]
    pub staff_key: Option<StaffPublicKey>,
    /// When created.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When last changed.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl StaffRecord {
    /// The claims as a list.
    pub fn claim_list(&self) -> Vec<Claim> {
        self.claims.values().cloned().collect()
    }
}

/// The fields of one staff member as imported (CSV row or JSON object), and
/// the body of `PUT /v1/staff/{ref}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StaffInput {
    /// ESR assignment number.
    pub assignment_number: String,
    /// The checks and training (must include identity and employment assignment).
    #[schema(value_type = Vec<Object>)]
    pub claims: Vec<Claim>,
    /// The staff member's own key, if any.
    #[serde(default)]
    #[schema(value_type = Option<crate::schema::StaffPublicKey>)]
    pub staff_key: Option<StaffPublicKey>,
}

/// A staff record without claim values (`GET /v1/staff`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StaffSummary {
    /// Reference.
    #[schema(value_type = crate::schema::StaffRef)]
    pub staff_ref: StaffRef,
    /// Assignment number.
    pub assignment_number: String,
    /// Claims held.
    pub claims: Vec<String>,
    /// Last change.
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

impl From<&StaffRecord> for StaffSummary {
    fn from(r: &StaffRecord) -> Self {
        StaffSummary {
            staff_ref: r.staff_ref.clone(),
            assignment_number: r.assignment_number.clone(),
            claims: r.claims.keys().map(ToString::to_string).collect(),
            updated_at: r.updated_at,
        }
    }
}

/// Default page size of the listing routes.
pub const DEFAULT_LIMIT: usize = 100;

fn default_limit() -> usize {
    DEFAULT_LIMIT
}

/// The query of `GET /v1/staff`: a page of records in reference order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Start after this reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(value_type = Option<crate::schema::StaffRef>)]
    pub after: Option<StaffRef>,
    /// Page size, 1 to 1000 (default 100); a larger one is served as the largest.
    #[serde(default = "default_limit", deserialize_with = "crate::query::saturating_usize")]
    #[param(format = "uint64")]
    pub limit: usize,
}

impl Default for PageQuery {
    fn default() -> Self {
        PageQuery { after: None, limit: DEFAULT_LIMIT }
    }
}

/// The query of `POST /v1/staff/import`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// Import the good rows even if some are refused (default: all or nothing).
    #[serde(default)]
    pub partial: bool,
}

/// The format of an import body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportFormat {
    /// An ESR-style CSV export (`text/csv`).
    Csv,
    /// A JSON array of [`StaffInput`] (`application/json`).
    Json,
}

impl ImportFormat {
    /// Its `Content-Type`.
    pub const fn content_type(self) -> &'static str {
        match self {
            ImportFormat::Csv => "text/csv",
            ImportFormat::Json => "application/json",
        }
    }
}

/// Why a row was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RowError {
    /// Line number in the file (1 = header) or index in a JSON array (from 1).
    pub line: u64,
    /// The column, if one is to blame.
    pub column: Option<String>,
    /// Machine-readable code.
    pub code: String,
    /// What was wrong (never the cell's contents).
    pub message: String,
}

/// The outcome of an import (also the `details` of a `rows-rejected` error).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    /// Rows read.
    pub rows: u64,
    /// Rows stored (new or updated).
    pub imported: u64,
    /// Of which new records.
    pub created: u64,
    /// Of which updates to existing records.
    pub updated: u64,
    /// Rows refused.
    pub rejected: u64,
    /// The refused rows (the first 1000).
    pub errors: Vec<RowError>,
    /// True if nothing was stored because of refused rows (all-or-nothing mode).
    pub aborted: bool,
}
