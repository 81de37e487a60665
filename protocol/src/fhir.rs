//! A passport as a FHIR R4 (4.0.1) `collection` Bundle, shaped like UK
//! Core, for workforce systems (e-rostering, HR) that take FHIR:
//!
//! - `Organization`: the home trust and, at the host, the host; an NHS
//!   organisation by its ODS code under [`ODS`], a non-NHS partner
//!   (`ext:<register>:<number>`) by its register number under
//!   [`EXTERNAL_REGISTER`]`<register>`;
//! - `Practitioner`: the pseudonymous staff reference under [`STAFF_REF`]; the
//!   professional registration number under its regulator's identifier
//!   system; name and birth date **only** if the identity claim is in the
//!   export; a `qualification` for the registration, each CSTF training
//!   subject (with its level), the DBS check and the occupational-health
//!   clearance, each coded under [`CLAIM`] by its claim kind;
//! - `PractitionerRole`: the home assignment (job role, assignment number,
//!   dates) when the assignment claim is in the export, and at the host
//!   the host role covering the consent (from receipt to its end);
//! - `Provenance`: the credential and consent ids, when it was made, by
//!   whom, and the erase-after date (the consent's end) as an extension.
//!
//! The NI number is never exported. staffpass's `valid_until` is
//! exclusive (the first day a claim is no longer valid); a FHIR period's
//! `end` is inclusive, so it is `valid_until` minus one day. Resource ids
//! are UUIDs derived from the credential id and the resource's role, so an
//! export of the same passport has the same ids (and golden vectors are
//! stable) without saying anything about the person.

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::claims::{Claim, Regulator};
use crate::datetime::{Date, Timestamp};
use crate::ids::{ConsentId, CredentialId, OrgId, StaffRef};

/// NHS ODS organisation codes.
pub const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
/// A non-NHS partner's register (the register name follows).
pub const EXTERNAL_REGISTER: &str = "https://staffpass.org.uk/Id/register/";
/// The pseudonymous staff reference.
pub const STAFF_REF: &str = "https://staffpass.org.uk/Id/staff-ref";
/// staffpass credential ids.
pub const CREDENTIAL: &str = "https://staffpass.org.uk/Id/credential";
/// staffpass consent ids.
pub const CONSENT: &str = "https://staffpass.org.uk/Id/consent";
/// ESR assignment numbers.
pub const ASSIGNMENT: &str = "https://staffpass.org.uk/Id/esr-assignment-number";
/// DBS certificate numbers.
pub const DBS_CERTIFICATE: &str = "https://staffpass.org.uk/Id/dbs-certificate-number";
/// The claim kinds, as a code system.
pub const CLAIM: &str = "https://staffpass.org.uk/CodeSystem/claim-kind";
/// The erase-after extension on the Provenance.
pub const ERASE_AFTER: &str = "https://staffpass.org.uk/StructureDefinition/erase-after";

/// The identifier system of a regulator's registration numbers (UK Core's
/// where it has one).
pub fn regulator_system(r: Regulator) -> &'static str {
    match r {
        Regulator::Gmc => "https://fhir.hl7.org.uk/Id/gmc-number",
        Regulator::Nmc => "https://fhir.hl7.org.uk/Id/nmc-number",
        Regulator::Hcpc => "https://fhir.hl7.org.uk/Id/hcpc-number",
        Regulator::Gphc => "https://fhir.hl7.org.uk/Id/gphc-number",
        Regulator::Gdc => "https://fhir.hl7.org.uk/Id/gdc-number",
        Regulator::Goc => "https://staffpass.org.uk/Id/goc-number",
        Regulator::Swe => "https://staffpass.org.uk/Id/swe-number",
    }
}

/// An organisation in the export.
#[derive(Debug, Clone, Copy)]
pub struct Org<'a> {
    /// Its id.
    pub id: &'a OrgId,
    /// Its name, where the roster gives one.
    pub name: Option<&'a str>,
}

/// What goes into the Bundle.
#[derive(Debug, Clone)]
pub struct Export<'a> {
    /// The home trust (issuer of the credential).
    pub home: Org<'a>,
    /// The host, for a received passport.
    pub host: Option<Org<'a>>,
    /// The staff member.
    pub staff: &'a StaffRef,
    /// The claims exported (those of the credential, or those consented).
    pub claims: &'a [Claim],
    /// The credential they come from.
    pub credential: CredentialId,
    /// The consent they were shared under, at the host.
    pub consent: Option<ConsentId>,
    /// The host role's period (receipt to the consent's end), at the host.
    pub host_period: Option<(Timestamp, Timestamp)>,
    /// When the host must erase it (the consent's end).
    pub erase_after: Option<Timestamp>,
    /// When the export was made.
    pub recorded: Timestamp,
}

/// A UUID (`urn:uuid:`) for the resource `role` of `credential`: the
/// first 16 bytes of SHA-256 over both, as a version 4 / variant 1 UUID.
fn uuid(credential: &CredentialId, role: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"staffpass fhir resource id\0");
    h.update(credential.as_bytes());
    h.update(role.as_bytes());
    let mut b: [u8; 16] = h.finalize()[..16].try_into().unwrap_or([0; 16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &x[..8], &x[8..12], &x[12..16], &x[16..20], &x[20..])
}

fn org_identifier(org: &OrgId) -> Value {
    match org {
        OrgId::Ods(code) => json!({ "system": ODS, "value": code.to_string() }),
        OrgId::External { register, number } => {
            json!({ "system": format!("{EXTERNAL_REGISTER}{register}"), "value": number.to_string() })
        }
    }
}

fn organization(id: &str, org: Org<'_>) -> Value {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("Organization"));
    r.insert("id".into(), json!(id));
    r.insert("identifier".into(), json!([org_identifier(org.id)]));
    r.insert("active".into(), json!(true));
    if let Some(n) = org.name {
        r.insert("name".into(), json!(n));
    }
    Value::Object(r)
}

/// The inclusive last day of a claim valid until (exclusive) `d`.
fn last_day(d: Date) -> String {
    d.plus_days(-1).to_string()
}

fn period(start: Option<Date>, valid_until: Option<Date>) -> Option<Value> {
    let mut p = Map::new();
    if let Some(s) = start {
        p.insert("start".into(), json!(s.to_string()));
    }
    if let Some(u) = valid_until {
        p.insert("end".into(), json!(last_day(u)));
    }
    (!p.is_empty()).then_some(Value::Object(p))
}

fn coded(kind: &str, text: String) -> Value {
    json!({ "coding": [{ "system": CLAIM, "code": kind }], "text": text })
}

/// The qualification a claim becomes, if it becomes one.
fn qualification(c: &Claim) -> Option<Value> {
    let kind = c.kind().to_string();
    let until = c.valid_until();
    let mut q = Map::new();
    match c {
        Claim::ProfessionalRegistration(r) => {
            q.insert("identifier".into(), json!([{ "system": regulator_system(r.regulator), "value": r.number }]));
            q.insert("code".into(), coded(&kind, format!("{} registration", r.regulator)));
            q.insert("issuer".into(), json!({ "display": r.regulator.to_string() }));
            if let Some(p) = period(None, until) {
                q.insert("period".into(), p);
            }
        }
        Claim::Training(subject, t) => {
            q.insert("code".into(), coded(&kind, format!("{subject} (CSTF level {})", t.level)));
            q.extend(period(Some(t.completed_on), until).map(|p| ("period".to_owned(), p)));
        }
        Claim::Dbs(d) => {
            q.insert("identifier".into(), json!([{ "system": DBS_CERTIFICATE, "value": d.certificate_number }]));
            q.insert("code".into(), coded(&kind, format!("DBS check ({})", d.level)));
            q.extend(period(Some(d.issued_on), until).map(|p| ("period".to_owned(), p)));
        }
        Claim::OccupationalHealth(o) => {
            let epp = if o.epp_cleared { ", cleared for exposure-prone procedures" } else { "" };
            q.insert("code".into(), coded(&kind, format!("Occupational health clearance{epp}")));
            q.extend(period(Some(o.cleared_on), until).map(|p| ("period".to_owned(), p)));
        }
        _ => return None,
    }
    Some(Value::Object(q))
}

fn entry(id: &str, resource: Value) -> Value {
    json!({ "fullUrl": format!("urn:uuid:{id}"), "resource": resource })
}

fn reference(id: &str) -> Value {
    json!({ "reference": format!("urn:uuid:{id}") })
}

/// The Bundle.
pub fn bundle(e: &Export<'_>) -> Value {
    let cred = &e.credential;
    let home_id = uuid(cred, "home");
    let host_id = uuid(cred, "host");
    let pr_id = uuid(cred, "practitioner");

    let mut entries = vec![entry(&home_id, organization(&home_id, e.home))];
    if let Some(host) = e.host {
        entries.push(entry(&host_id, organization(&host_id, host)));
    }

    let mut p = Map::new();
    p.insert("resourceType".into(), json!("Practitioner"));
    p.insert("id".into(), json!(pr_id));
    let mut ids = vec![json!({ "system": STAFF_REF, "value": e.staff.to_string() })];
    for c in e.claims {
        if let Claim::ProfessionalRegistration(r) = c {
            ids.push(json!({ "system": regulator_system(r.regulator), "value": r.number }));
        }
    }
    p.insert("identifier".into(), Value::Array(ids));
    p.insert("active".into(), json!(true));
    for c in e.claims {
        if let Claim::Identity(i) = c {
            // Name and birth date only: the NI number never leaves as FHIR.
            p.insert("name".into(), json!([{ "use": "official", "text": i.full_name }]));
            p.insert("birthDate".into(), json!(i.date_of_birth.to_string()));
        }
    }
    let quals: Vec<Value> = e.claims.iter().filter_map(qualification).collect();
    if !quals.is_empty() {
        p.insert("qualification".into(), Value::Array(quals));
    }
    entries.push(entry(&pr_id, Value::Object(p)));

    for c in e.claims {
        if let Claim::EmploymentAssignment(a) = c {
            let id = uuid(cred, "home-role");
            let mut r = Map::new();
            r.insert("resourceType".into(), json!("PractitionerRole"));
            r.insert("id".into(), json!(id));
            r.insert("identifier".into(), json!([{ "system": ASSIGNMENT, "value": a.assignment_number }]));
            r.insert("active".into(), json!(true));
            let mut per = Map::new();
            per.insert("start".into(), json!(a.start.to_string()));
            if let Some(end) = a.end {
                per.insert("end".into(), json!(last_day(end)));
            }
            r.insert("period".into(), Value::Object(per));
            r.insert("practitioner".into(), reference(&pr_id));
            r.insert("organization".into(), reference(&home_id));
            r.insert("code".into(), json!([{ "text": a.job_role }]));
            entries.push(entry(&id, Value::Object(r)));
        }
    }
    if let (Some(_), Some((start, end))) = (e.host, e.host_period) {
        let id = uuid(cred, "host-role");
        entries.push(entry(
            &id,
            json!({
                "resourceType": "PractitionerRole",
                "id": id,
                "active": true,
                "period": { "start": start.to_string(), "end": end.to_string() },
                "practitioner": reference(&pr_id),
                "organization": reference(&host_id),
            }),
        ));
    }

    let prov_id = uuid(cred, "provenance");
    let mut what = vec![json!({
        "role": "source",
        "what": { "identifier": { "system": CREDENTIAL, "value": cred.to_string() } },
    })];
    if let Some(c) = e.consent {
        what.push(json!({ "role": "source", "what": { "identifier": { "system": CONSENT, "value": c.to_string() } } }));
    }
    let mut prov = Map::new();
    prov.insert("resourceType".into(), json!("Provenance"));
    prov.insert("id".into(), json!(prov_id));
    if let Some(t) = e.erase_after {
        prov.insert("extension".into(), json!([{ "url": ERASE_AFTER, "valueDateTime": t.to_string() }]));
    }
    prov.insert("target".into(), json!([reference(&pr_id)]));
    prov.insert("recorded".into(), json!(e.recorded.to_string()));
    prov.insert("agent".into(), json!([{ "who": reference(&home_id) }]));
    prov.insert("entity".into(), Value::Array(what));
    entries.push(entry(&prov_id, Value::Object(prov)));

    json!({
        "resourceType": "Bundle",
        "id": uuid(cred, "bundle"),
        "type": "collection",
        "timestamp": e.recorded.to_string(),
        "entry": entries,
    })
}
