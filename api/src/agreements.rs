//! Agreements and their roster chains (read: `read-only`; submit: `admin`).

use serde::{Deserialize, Serialize};
use staffpass_protocol::AgreementId;
use staffpass_protocol::roster::{Entry, Equivocation, State};
use utoipa::{IntoParams, ToSchema};

/// `GET /v1/agreements/{id}`: one roster as this node holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgreementView {
    /// Its id.
    #[schema(value_type = crate::schema::AgreementId)]
    pub id: AgreementId,
    /// Head seq.
    pub seq: u64,
    /// Head hash.
    pub head: String,
    /// Not past valid_until.
    pub fresh: bool,
    /// The equivocation that halted it, if any.
    #[schema(value_type = Option<Object>)]
    pub halted: Option<Equivocation>,
    /// The roster state after the head entry (terms, stewards, members).
    #[schema(value_type = Object)]
    pub state: State,
}

/// The query of `GET /v1/agreements/{id}/entries`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntriesQuery {
    /// The first seq wanted (default 0, the genesis).
    #[serde(default, deserialize_with = "crate::query::saturating_u64")]
    #[param(format = "uint64")]
    pub from: u64,
}

/// The body of `POST /v1/agreements` and `POST /v1/agreements/{id}/entries`:
/// one signed roster entry or a list of them, all for one agreement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Submission {
    /// A list of entries, in seq order (at least one).
    Many(Vec<Entry>),
    /// One entry.
    One(Box<Entry>),
}

/// Written out because the derive cannot say that the list is not empty
/// (the node refuses an empty one with 400).
impl utoipa::PartialSchema for Submission {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let entry = || ObjectBuilder::new().schema_type(Type::Object);
        OneOfBuilder::new()
            .item(
                ArrayBuilder::new()
                    .items(entry())
                    .min_items(Some(1))
                    .description(Some("A list of entries, in seq order (at least one).")),
            )
            .item(entry().description(Some("One entry.")))
            .description(Some(
                "The body of `POST /v1/agreements` and `POST /v1/agreements/{id}/entries`:\n\
                 one signed roster entry or a list of them, all for one agreement.",
            ))
            .into()
    }
}

impl ToSchema for Submission {}

impl Submission {
    /// The entries, in order.
    pub fn into_vec(self) -> Vec<Entry> {
        match self {
            Submission::Many(v) => v,
            Submission::One(e) => vec![*e],
        }
    }
}

/// The body of `POST /v1/agreements/{id}/override`: of the two entries at
/// the halted seq, the one that stands on this node (hex hash, as shown in
/// the status alarm). Audited; the stewards should still sign a resolution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OverrideRequest {
    /// The hash of the chosen entry.
    #[schema(value_type = crate::schema::Hash)]
    pub chosen: staffpass_protocol::signing::Hash,
}

/// The outcome of a roster submission (201 if any entry was applied, else 200).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Submitted {
    /// The agreement.
    #[schema(value_type = crate::schema::AgreementId)]
    pub agreement: AgreementId,
    /// Entries newly applied.
    pub applied: u64,
    /// Entries already held.
    pub already_held: u64,
    /// The head seq after.
    pub seq: u64,
}
