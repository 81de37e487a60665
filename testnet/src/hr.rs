//! What HR does at a trust, through its node's API: import staff, grant,
//! withdraw and follow consents, revoke credentials, read received
//! passports. Staff appear only by pseudonymous reference.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow};
use serde_json::Value;
use staffpass_api::audit::AuditQuery;
use staffpass_api::consents::ConsentRequest;
use staffpass_api::credentials::RevokeRequest;
use staffpass_api::staff::{ImportFormat, ImportQuery, PageQuery};
use staffpass_protocol::{ConsentId, CredentialId};

use crate::data;
use crate::net::{Node, STEP, wait_for};
use crate::topology::Trust;

/// A member of staff at their home trust.
#[derive(Debug, Clone)]
pub struct Person {
    /// Pseudonymous reference.
    pub staff_ref: String,
    /// Job role (from the export).
    pub role: String,
}

impl Person {
    /// A short label for reports: the reference's start and the role.
    pub fn label(&self) -> String {
        format!("{}… ({})", self.staff_ref.chars().take(10).collect::<String>(), self.role)
    }
}

/// The synthetic export for `trust`.
pub fn export_for(trust: &Trust, rows: usize, seed: u64) -> data::Spec {
    data::Spec {
        seed: seed.wrapping_add(u64::from(trust.first_assignment)),
        rows,
        today: staffpass_node::node::now().date(),
        first_assignment: trust.first_assignment,
    }
}

/// Imports `csv` at `node`; returns the people by staff ref, with their roles.
pub async fn import(node: &Node, csv: &str) -> Result<Vec<Person>> {
    let report = node
        .client
        .import_staff(ImportFormat::Csv, csv.as_bytes().to_vec(), ImportQuery::default())
        .await
        .with_context(|| format!("{}: staff import", node.org()))?;
    let rows = csv.lines().count().saturating_sub(1) as u64;
    if report.imported != rows {
        return Err(anyhow!("{}: import stored {} of {rows} rows", node.org(), report.imported));
    }
    // Roles by assignment number, from the export itself.
    let roles: BTreeMap<&str, &str> = csv
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cells = l.split(',');
            let a = cells.next()?;
            Some((a, cells.nth(3)?))
        })
        .collect();
    let mut people = Vec::new();
    let mut query = PageQuery { after: None, limit: 1000 };
    loop {
        let list =
            node.client.staff_list(&query).await.with_context(|| format!("{}: list staff records", node.org()))?;
        if list.is_empty() {
            break;
        }
        for s in list {
            let role = roles.get(s.assignment_number.as_str()).unwrap_or(&"staff").to_string();
            people.push(Person { staff_ref: s.staff_ref.to_string(), role });
            query.after = Some(s.staff_ref);
        }
    }
    Ok(people)
}

/// The first person whose role contains one of `roles`, not in `taken`.
pub fn pick<'a>(people: &'a [Person], roles: &[&str], taken: &mut Vec<String>) -> Result<&'a Person> {
    let p = people
        .iter()
        .find(|p| roles.iter().any(|r| p.role.contains(r)) && !taken.contains(&p.staff_ref))
        .or_else(|| people.iter().find(|p| !taken.contains(&p.staff_ref)))
        .ok_or_else(|| anyhow!("no staff left to pick"))?;
    taken.push(p.staff_ref.clone());
    Ok(p)
}

/// A consent to grant.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    /// Who.
    pub staff: &'a str,
    /// To which org.
    pub to: &'a str,
    /// Under which agreement.
    pub agreement: &'a str,
    /// For which move.
    pub move_kind: &'a str,
    /// Which claims.
    pub claims: Vec<String>,
    /// For how many days.
    pub days: i64,
}

impl Grant<'_> {
    /// The API request for this grant, sharing from now for `days`.
    fn request(&self) -> Result<ConsentRequest> {
        Ok(ConsentRequest {
            staff: self.staff.parse().context("staff reference")?,
            receiver: self.to.parse().context("receiving organisation")?,
            agreement: self.agreement.parse().context("agreement id")?,
            move_kind: self.move_kind.parse().context("move kind")?,
            claims: self.claims.iter().map(|c| c.parse()).collect::<Result<_, _>>().context("claim name")?,
            not_before: None,
            not_after: staffpass_node::node::now().plus_days(self.days),
            staff_key: None,
        })
    }
}

/// Grants a consent at `home`; returns the consent id.
pub async fn grant(home: &Node, g: &Grant<'_>) -> Result<String> {
    let view = home.client.grant_consent(&g.request()?).await.with_context(|| format!("{}: grant", home.org()))?;
    Ok(view.consent.id.to_string())
}

/// Grants a consent that the node must refuse; returns the refusal's code.
pub async fn grant_refused(home: &Node, g: &Grant<'_>) -> Result<String> {
    match home.client.grant_consent(&g.request()?).await {
        Ok(_) => Err(anyhow!("{}: a consent that should be refused was accepted", home.org())),
        Err(e) => Ok(e.code().unwrap_or("refused").to_string()),
    }
}

/// A consent as the home trust sees it.
pub async fn consent(home: &Node, id: &str) -> Result<Value> {
    let id: ConsentId = id.parse().context("consent id")?;
    let view = home.client.consent(&id).await.with_context(|| format!("{}: consent {id}", home.org()))?;
    Ok(serde_json::to_value(view)?)
}

/// Waits until consent `id` at `home` is in `state`.
pub async fn wait_state(home: &Node, id: &str, state: &str) -> Result<Value> {
    wait_for(&format!("consent {id} at {} to be {state}", home.org()), STEP, || async {
        Ok(consent(home, id).await?["state"]["state"] == state)
    })
    .await?;
    consent(home, id).await
}

/// A received passport at the host.
pub async fn received(host: &Node, id: &str) -> Result<Value> {
    let id: ConsentId = id.parse().context("consent id")?;
    let view = host.client.received_one(&id).await.with_context(|| format!("{}: received {id}", host.org()))?;
    Ok(serde_json::to_value(view)?)
}

/// Every received passport at the host (summaries).
pub async fn received_all(host: &Node) -> Result<Vec<Value>> {
    let list = host.client.received().await.with_context(|| format!("{}: received", host.org()))?;
    Ok(list.into_iter().map(serde_json::to_value).collect::<Result<_, _>>()?)
}

/// The claim names of a received passport, sorted.
pub fn claim_names(received: &Value) -> Vec<String> {
    let mut v: Vec<String> = received["claims"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["claim"].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

/// How the host sees a passport's claims today.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Dates {
    /// In date for more than 60 days, or with no expiry.
    pub in_date: usize,
    /// In date, but for 60 days or less.
    pub expiring: usize,
    /// Out of date.
    pub expired: usize,
}

/// Counts a received passport's claims by validity.
pub fn dates(received: &Value) -> Dates {
    let mut d = Dates::default();
    for c in received["claims"].as_array().into_iter().flatten() {
        match c["validity"]["status"].as_str() {
            Some("expired") => d.expired += 1,
            Some("in-date") if c["validity"]["days_left"].as_i64().is_some_and(|n| n <= 60) => d.expiring += 1,
            _ => d.in_date += 1,
        }
    }
    d
}

/// Revokes credential `cred` at `home` with `reason`.
pub async fn revoke(home: &Node, cred: &str, reason: &str) -> Result<Value> {
    let cred: CredentialId = cred.parse().context("credential id")?;
    let request = RevokeRequest { reason: reason.parse().context("revocation reason")? };
    let view =
        home.client.revoke_credential(&cred, &request).await.with_context(|| format!("{}: revoke", home.org()))?;
    Ok(serde_json::to_value(view)?)
}

/// Withdraws consent `id` at `home`.
pub async fn withdraw(home: &Node, id: &str) -> Result<Value> {
    let id: ConsentId = id.parse().context("consent id")?;
    let view = home.client.withdraw_consent(&id).await.with_context(|| format!("{}: withdraw", home.org()))?;
    Ok(serde_json::to_value(view)?)
}

/// Audit entries at `node` whose action is `action` and whose object mentions `part`.
pub async fn audit_count(node: &Node, action: &str, part: &str) -> Result<usize> {
    let log = node
        .client
        .audit(AuditQuery { since: 0, limit: 10_000 })
        .await
        .with_context(|| format!("{}: audit log", node.org()))?;
    Ok(log
        .iter()
        .filter(|e| e.event.action == action && e.event.object.as_deref().is_some_and(|o| o.contains(part)))
        .count())
}

/// Every claim name of the CSTF, as `training:<subject>`.
pub fn all_training() -> Vec<String> {
    data::CSTF.iter().map(|(s, _)| format!("training:{s}")).collect()
}

/// `names` as owned strings.
pub fn claims(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}
