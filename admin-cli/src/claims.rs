//! Claims in words: a short summary of each (never the identity's personal
//! details: those are only in `--json`), and "in date / expires in N days /
//! expired".

use staffpass_protocol::Date;
use staffpass_protocol::claims::{Claim, Validity};

/// Within this many days of its end, a claim is shown as expiring soon.
pub const SOON_DAYS: i32 = 30;

/// Whether a claim is in date, in words.
pub fn validity_text(v: &Validity) -> String {
    match *v {
        Validity::NoExpiry => "in date (no expiry)".into(),
        Validity::InDate { until, days_left } if days_left <= SOON_DAYS => {
            format!("expires in {days_left} day{} (on {until})", if days_left == 1 { "" } else { "s" })
        }
        Validity::InDate { until, days_left } => {
            format!("in date until {} ({days_left} days left)", until.plus_days(-1))
        }
        Validity::Expired { since } => format!("EXPIRED on {since}"),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn opt(d: Option<Date>) -> String {
    d.map(|d| d.to_string()).unwrap_or_else(|| "-".into())
}

/// A claim's value in a few words (no name, date of birth or NI number).
pub fn summary(c: &Claim) -> String {
    match c {
        Claim::Identity(i) => format!("verified on {}", i.verified_on),
        Claim::RightToWork(r) => format!("{}, checked {}, ends {}", r.basis, r.checked_on, opt(r.expires_on)),
        Claim::Dbs(d) => format!(
            "{}, issued {}, update service {}, recheck {}",
            d.level,
            d.issued_on,
            yes_no(d.update_service),
            opt(d.recheck_on)
        ),
        Claim::ProfessionalRegistration(r) => format!("{} {}, renewal {}", r.regulator, r.number, opt(r.expires_on)),
        Claim::EmploymentAssignment(a) => format!("{} from {}, ends {}", a.job_role, a.start, opt(a.end)),
        Claim::TemporaryPlacement(p) => format!("{} from {} to {}", p.description, p.start, p.end),
        Claim::References(r) => format!("{} reference(s), checked {}", r.count, r.checked_on),
        Claim::OccupationalHealth(o) => {
            format!("cleared {}, EPP {}, review {}", o.cleared_on, yes_no(o.epp_cleared), opt(o.review_on))
        }
        Claim::Immunisation(_, r) => format!("completed {}, booster {}", r.completed_on, opt(r.expires_on)),
        Claim::Training(_, t) => {
            format!("level {}, completed {}, refresher every {} months", t.level, t.completed_on, t.refresher_months)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_in_words() {
        let d = |s: &str| s.parse::<Date>().unwrap();
        assert_eq!(validity_text(&Validity::Expired { since: d("2026-03-01") }), "EXPIRED on 2026-03-01");
        assert_eq!(
            validity_text(&Validity::InDate { until: d("2026-03-01"), days_left: 1 }),
            "expires in 1 day (on 2026-03-01)"
        );
        assert_eq!(
            validity_text(&Validity::InDate { until: d("2026-03-01"), days_left: 90 }),
            "in date until 2026-02-28 (90 days left)"
        );
    }
}
